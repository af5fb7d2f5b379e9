//! Table tests over reports written for these tests in the shapes that
//! mail servers and providers send.

use super::*;

const DELIVERY: &str = "0193a5b2-7c1e-7d4f-9a3b-2f1e0c9d8b7a";

fn delivery() -> Uuid {
    Uuid::parse_str(DELIVERY).unwrap()
}

/// What a test expects of a report's one bounce.
struct Expected {
    kind: Kind,
    recipient: Option<&'static str>,
    status: Option<&'static str>,
    reason_contains: &'static str,
}

fn check(name: &str, report: &Report, expected: &Expected) {
    assert_eq!(report.bounces.len(), 1, "{name}: {report:?}");
    let bounce = &report.bounces[0];
    assert_eq!(bounce.kind, expected.kind, "{name}");
    assert_eq!(bounce.recipient.as_deref(), expected.recipient, "{name}");
    assert_eq!(bounce.status.as_deref(), expected.status, "{name}");
    assert!(
        bounce.reason.contains(expected.reason_contains),
        "{name}: reason {:?}",
        bounce.reason
    );
    assert_eq!(report.delivery_id(), Some(delivery()), "{name}: {report:?}");
}

fn postfix_dsn(action: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "Return-Path: <>\n\
Received: by mx.example.net (Postfix) id 4XyZ1; Tue, 14 Jan 2025 10:02:11 +0100 (CET)\n\
Date: Tue, 14 Jan 2025 10:02:11 +0100 (CET)\n\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n\
Subject: Undelivered Mail Returned to Sender\n\
To: bounces@example.org\n\
Message-Id: <20250114090211.4XyZ1@mx.example.net>\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=delivery-status;\n\
\tboundary=\"4XyZ1.1736845331/mx.example.net\"\n\
\n\
This is a MIME-encapsulated message.\n\
\n\
--4XyZ1.1736845331/mx.example.net\n\
Content-Description: Notification\n\
Content-Type: text/plain; charset=us-ascii\n\
\n\
This is the mail system at host mx.example.net.\n\
\n\
I'm sorry to have to inform you that your message could not\n\
be delivered to one or more recipients.\n\
\n\
<Camille.Roux@example.fr>: host mail.example.fr[192.0.2.25] said: {diagnostic}\n\
\n\
--4XyZ1.1736845331/mx.example.net\n\
Content-Description: Delivery report\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; mx.example.net\n\
X-Postfix-Queue-ID: 4XyZ1\n\
Arrival-Date: Tue, 14 Jan 2025 10:02:09 +0100 (CET)\n\
\n\
Final-Recipient: rfc822; Camille.Roux@example.fr\n\
Original-Recipient: rfc822;Camille.Roux@example.fr\n\
Action: {action}\n\
Status: {status}\n\
Remote-MTA: dns; mail.example.fr\n\
Diagnostic-Code: smtp; {diagnostic}\n\
\n\
--4XyZ1.1736845331/mx.example.net\n\
Content-Description: Undelivered Message Headers\n\
Content-Type: text/rfc822-headers\n\
\n\
From: Muster <equipe@example.org>\n\
To: Camille Roux <Camille.Roux@example.fr>\n\
Subject: =?utf-8?q?Rendez-vous_=C3=A0_Lyon?=\n\
Message-ID: <{DELIVERY}@example.org>\n\
Date: Tue, 14 Jan 2025 10:02:08 +0100\n\
\n\
--4XyZ1.1736845331/mx.example.net--\n"
    )
}

/// A delay warning whose DSN carries the whole original message.
fn delayed_dsn() -> String {
    format!(
        "From: Mail Delivery Subsystem <mailer-daemon@relay.example.net>\n\
To: bounces@example.org\n\
Subject: Warning: message 50EA3kQ9 delayed 4 hours\n\
Message-ID: <delay-50EA3kQ9@relay.example.net>\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"b-delay\"\n\
\n\
--b-delay\n\
Content-Type: text/plain\n\
\n\
Your message has not yet been delivered. The mail system will keep trying.\n\
\n\
--b-delay\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; relay.example.net\n\
\n\
Final-Recipient: RFC822; louis.petit@example.com\n\
Action: delayed\n\
Status: 4.4.1\n\
Diagnostic-Code: SMTP; 421 4.4.1 connection timed out\n\
Will-Retry-Until: Fri, 17 Jan 2025 10:00:00 +0100\n\
\n\
--b-delay\n\
Content-Type: message/rfc822\n\
\n\
From: equipe@example.org\n\
To: louis.petit@example.com\n\
Subject: Rejoignez-nous\n\
Message-ID: <{DELIVERY}@example.org>\n\
\n\
Bonjour Louis,\n\
--b-delay--\n"
    )
}

/// A DSN whose failed group gives no Status, only the SMTP answer.
fn dsn_without_status() -> String {
    format!(
        "From: postmaster@mx.example.net\n\
To: bounces@example.org\n\
Subject: Delivery Status Notification (Failure)\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"nb\"\n\
\n\
--nb\n\
Content-Type: text/plain\n\
\n\
Delivery failed.\n\
--nb\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns;mx.example.net\n\
\n\
Final-Recipient: rfc822;nadia.benali@example.org\n\
Action: failed\n\
Diagnostic-Code: smtp;452 4.2.2 The email account that you tried to reach\n\
\x20is over quota\n\
\n\
--nb\n\
Content-Type: text/rfc822-headers\n\
\n\
Message-ID: <{DELIVERY}@example.org>\n\
--nb--\n"
    )
}

fn exim_text_bounce() -> String {
    format!(
        "Return-path: <>\n\
From: Mail Delivery System <Mailer-Daemon@mx.example.net>\n\
To: bounces@example.org\n\
Subject: Mail delivery failed: returning message to sender\n\
Message-Id: <E1tXq2b-0004Qm-3K@mx.example.net>\n\
\n\
This message was created automatically by mail delivery software.\n\
\n\
A message that you sent could not be delivered to one or more of its\n\
recipients. This is a permanent error. The following address(es) failed:\n\
\n\
  marie.lefevre@example.net\n\
    host mx1.example.net [198.51.100.7]\n\
    SMTP error from remote mail server after RCPT TO:<marie.lefevre@example.net>:\n\
    550 5.1.1 <marie.lefevre@example.net>: Recipient address rejected: User unknown\n\
\n\
------ This is a copy of the message, including all the headers. ------\n\
\n\
Return-path: <bounces@example.org>\n\
From: Muster <equipe@example.org>\n\
To: Someone Else <autre@example.com>\n\
Message-ID: <{DELIVERY}@example.org>\n\
Subject: Rendez-vous\n\
\n\
Bonjour Marie,\n"
    )
}

fn gmail_style_text_bounce() -> String {
    format!(
        "From: Mail Delivery Subsystem <mailer-daemon@example.com>\n\
To: bounces@example.org\n\
Subject: Delivery Status Notification (Failure)\n\
\n\
Delivery to the following recipient failed permanently:\n\
\n\
     hugo.martin@example.com\n\
\n\
Technical details of permanent failure:\n\
The recipient's mailbox does not exist any more.\n\
\n\
----- Original message -----\n\
\n\
From: equipe@example.org\n\
To: hugo.martin@example.com\n\
Message-ID: <{DELIVERY}@example.org>\n"
    )
}

fn arf(feedback_type: &str, rcpt_to: Option<&str>, original_type: &str) -> String {
    let rcpt = rcpt_to
        .map(|to| format!("Original-Rcpt-To: {to}\n"))
        .unwrap_or_default();
    format!(
        "From: <feedback@fbl.example.com>\n\
To: <abuse@example.org>\n\
Subject: FW: Rendez-vous\n\
Message-ID: <fbl-1736845331-77@fbl.example.com>\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=feedback-report;\n\
\tboundary=\"part1_13d.2e68ed54_report\"\n\
\n\
--part1_13d.2e68ed54_report\n\
Content-Type: text/plain; charset=\"US-ASCII\"\n\
\n\
This is an email abuse report for an email message received from IP\n\
192.0.2.1 on Tue, 14 Jan 2025 10:02:08 +0100.\n\
\n\
--part1_13d.2e68ed54_report\n\
Content-Type: message/feedback-report\n\
\n\
Feedback-Type: {feedback_type}\n\
User-Agent: ExampleFBL/1.4\n\
Version: 1\n\
Original-Mail-From: <bounces@example.org>\n\
{rcpt}Arrival-Date: Tue, 14 Jan 2025 10:02:08 +0100\n\
Source-IP: 192.0.2.1\n\
Reported-Domain: example.org\n\
\n\
--part1_13d.2e68ed54_report\n\
Content-Type: {original_type}\n\
\n\
From: <equipe@example.org>\n\
To: <redacted@example.com>\n\
Subject: Rendez-vous\n\
Message-ID: <{DELIVERY}@example.org>\n\
Date: Tue, 14 Jan 2025 10:02:08 +0100\n\
\n\
--part1_13d.2e68ed54_report--\n"
    )
}

#[test]
fn returned_messages_are_classified_with_their_reason() {
    let cases = [
        (
            "postfix permanent",
            postfix_dsn(
                "failed",
                "5.1.1",
                "550 5.1.1 <Camille.Roux@example.fr>: User unknown",
            ),
            Format::Dsn,
            Expected {
                kind: Kind::Permanent,
                recipient: Some("Camille.Roux@example.fr"),
                status: Some("5.1.1"),
                reason_contains: "User unknown",
            },
        ),
        (
            "postfix transient failure",
            postfix_dsn("failed", "4.7.1", "450 4.7.1 Greylisted, try again later"),
            Format::Dsn,
            Expected {
                kind: Kind::Transient,
                recipient: Some("Camille.Roux@example.fr"),
                status: Some("4.7.1"),
                reason_contains: "Greylisted",
            },
        ),
        (
            "delay warning",
            delayed_dsn(),
            Format::Dsn,
            Expected {
                kind: Kind::Transient,
                recipient: Some("louis.petit@example.com"),
                status: Some("4.4.1"),
                reason_contains: "connection timed out",
            },
        ),
        (
            "status only in the diagnostic",
            dsn_without_status(),
            Format::Dsn,
            Expected {
                kind: Kind::Transient,
                recipient: Some("nadia.benali@example.org"),
                status: Some("4.2.2"),
                reason_contains: "is over quota",
            },
        ),
        (
            "exim text",
            exim_text_bounce(),
            Format::Text,
            Expected {
                kind: Kind::Permanent,
                recipient: Some("marie.lefevre@example.net"),
                status: Some("5.1.1"),
                reason_contains: "Recipient address rejected: User unknown",
            },
        ),
        (
            "text without a code",
            gmail_style_text_bounce(),
            Format::Text,
            Expected {
                kind: Kind::Permanent,
                recipient: Some("hugo.martin@example.com"),
                status: None,
                reason_contains: "Technical details of permanent failure",
            },
        ),
        (
            "abuse report",
            arf("abuse", Some("camille.roux@example.fr"), "message/rfc822"),
            Format::Arf,
            Expected {
                kind: Kind::Complaint,
                recipient: Some("camille.roux@example.fr"),
                status: None,
                reason_contains: "abuse complaint reported by ExampleFBL/1.4",
            },
        ),
        (
            "redacted abuse report",
            arf("abuse", None, "text/rfc822-headers"),
            Format::Arf,
            Expected {
                kind: Kind::Complaint,
                recipient: None,
                status: None,
                reason_contains: "abuse",
            },
        ),
    ];
    for (name, raw, format, expected) in cases {
        let report = parse_message(raw.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.format, format, "{name}");
        check(name, &report, &expected);
    }
}

#[test]
fn a_report_keeps_the_reporters_own_message_id() {
    let raw = postfix_dsn("failed", "5.1.1", "550 5.1.1 User unknown");
    let report = parse_message(raw.as_bytes()).unwrap();
    assert_eq!(
        report.report_id.as_deref(),
        Some("20250114090211.4XyZ1@mx.example.net")
    );
}

#[test]
fn a_text_bounce_ignores_the_addresses_of_the_returned_copy() {
    let report = parse_message(exim_text_bounce().as_bytes()).unwrap();
    let recipients: Vec<_> = report
        .bounces
        .iter()
        .filter_map(|b| b.recipient.as_deref())
        .collect();
    assert_eq!(recipients, ["marie.lefevre@example.net"]);
}

#[test]
fn reports_of_success_or_of_no_complaint_record_nothing() {
    let delivered = postfix_dsn("delivered", "2.0.0", "250 2.0.0 Ok: queued as 9F2A");
    let not_spam = arf(
        "not-spam",
        Some("camille.roux@example.fr"),
        "message/rfc822",
    );
    for raw in [delivered, not_spam] {
        let report = parse_message(raw.as_bytes()).unwrap();
        assert!(report.bounces.is_empty(), "{report:?}");
        assert_eq!(report.delivery_id(), Some(delivery()));
    }
}

#[test]
fn a_message_that_is_no_report_is_refused() {
    let letter = "From: jean@example.org\nTo: equipe@example.org\nSubject: Merci\n\n\
                  Merci pour l'invitation, j'y serai.\n";
    assert_eq!(
        parse_message(letter.as_bytes()),
        Err(ParseError::NotAReport)
    );
    assert_eq!(parse_message(b""), Err(ParseError::NotAMessage));
}

fn sns(message: &serde_json::Value) -> Vec<u8> {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": "5b0ab7d4-2f1c-5b8e-9a51-3c0f7f6d2e11",
        "TopicArn": "arn:aws:sns:eu-west-3:123456789012:muster-bounces",
        "Message": message.to_string(),
        "Timestamp": "2025-01-14T09:02:12.345Z",
        "SignatureVersion": "1",
        "Signature": "bm90IGEgcmVhbCBzaWduYXR1cmU=",
        "SigningCertURL": "https://sns.eu-west-3.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.eu-west-3.amazonaws.com/?Action=Unsubscribe"
    })
    .to_string()
    .into_bytes()
}

fn ses_mail() -> serde_json::Value {
    serde_json::json!({
        "timestamp": "2025-01-14T09:02:08.000Z",
        "source": "equipe@example.org",
        "sourceArn": "arn:aws:ses:eu-west-3:123456789012:identity/example.org",
        "sendingAccountId": "123456789012",
        "messageId": "0102019461f0a7b2-3c1e8f5d-ses-000000",
        "destination": ["paul.girard@example.com"],
        "headersTruncated": false,
        "headers": [
            {"name": "From", "value": "Muster <equipe@example.org>"},
            {"name": "To", "value": "paul.girard@example.com"},
            {"name": "Message-ID", "value": format!("<{DELIVERY}@example.org>")}
        ],
        "commonHeaders": {
            "from": ["Muster <equipe@example.org>"],
            "to": ["paul.girard@example.com"],
            "messageId": format!("<{DELIVERY}@example.org>"),
            "subject": "Rendez-vous"
        }
    })
}

fn ses_bounce(bounce_type: &str, sub_type: &str, diagnostic: Option<&str>) -> serde_json::Value {
    let mut recipient = serde_json::json!({
        "emailAddress": "paul.girard@example.com",
        "action": "failed",
        "status": if bounce_type == "Permanent" { "5.1.1" } else { "4.2.2" },
    });
    if let Some(diagnostic) = diagnostic {
        recipient["diagnosticCode"] = diagnostic.into();
    }
    serde_json::json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [recipient],
            "timestamp": "2025-01-14T09:02:11.000Z",
            "feedbackId": "0102019461f0b1c4-feedback-000000",
            "reportingMTA": "dsn; a1-23.smtp-out.eu-west-3.amazonses.com"
        },
        "mail": ses_mail()
    })
}

fn ses_complaint() -> serde_json::Value {
    serde_json::json!({
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "ExampleFBL/1.4",
            "complainedRecipients": [{"emailAddress": "paul.girard@example.com"}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2025-01-14T09:30:00.000Z",
            "timestamp": "2025-01-14T09:31:00.000Z",
            "feedbackId": "0102019461f0c9d8-complaint-000000"
        },
        "mail": ses_mail()
    })
}

fn mailgun(event: &str, severity: Option<&str>) -> Vec<u8> {
    let mut data = serde_json::json!({
        "event": event,
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1736845331.123,
        "log-level": "error",
        "recipient": "lea.moreau@example.net",
        "recipient-domain": "example.net",
        "message": {
            "headers": {
                "to": "lea.moreau@example.net",
                "message-id": format!("{DELIVERY}@example.org"),
                "from": "Muster <equipe@example.org>",
                "subject": "Rendez-vous"
            },
            "attachments": [],
            "size": 4211
        },
        "user-variables": {}
    });
    if let Some(severity) = severity {
        data["severity"] = severity.into();
        data["reason"] = "bounce".into();
        data["delivery-status"] = serde_json::json!({
            "attempt-no": 1,
            "code": if severity == "permanent" { 550 } else { 452 },
            "message": if severity == "permanent" {
                "5.1.1 The email account that you tried to reach does not exist"
            } else {
                "4.2.2 Mailbox full"
            },
            "description": "",
            "session-seconds": 0.41
        });
    }
    serde_json::json!({
        "signature": {
            "timestamp": "1736845331",
            "token": "3f0c1e9a7b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "signature": "9c2d0e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f"
        },
        "event-data": data
    })
    .to_string()
    .into_bytes()
}

#[test]
fn provider_notifications_are_classified_with_their_reason() {
    let cases = [
        (
            "ses permanent",
            "ses",
            sns(&ses_bounce(
                "Permanent",
                "General",
                Some("smtp; 550 5.1.1 user unknown"),
            )),
            Expected {
                kind: Kind::Permanent,
                recipient: Some("paul.girard@example.com"),
                status: Some("5.1.1"),
                reason_contains: "550 5.1.1 user unknown",
            },
        ),
        (
            "ses transient without diagnostic",
            "ses",
            sns(&ses_bounce("Transient", "MailboxFull", None)),
            Expected {
                kind: Kind::Transient,
                recipient: Some("paul.girard@example.com"),
                status: Some("4.2.2"),
                reason_contains: "Transient bounce (MailboxFull)",
            },
        ),
        (
            "ses undetermined",
            "ses",
            sns(&ses_bounce("Undetermined", "Undetermined", None)),
            Expected {
                kind: Kind::Transient,
                recipient: Some("paul.girard@example.com"),
                status: Some("4.2.2"),
                reason_contains: "Undetermined",
            },
        ),
        (
            "ses complaint",
            "ses",
            sns(&ses_complaint()),
            Expected {
                kind: Kind::Complaint,
                recipient: Some("paul.girard@example.com"),
                status: None,
                reason_contains: "abuse complaint",
            },
        ),
        (
            "ses raw delivery",
            "ses",
            ses_complaint().to_string().into_bytes(),
            Expected {
                kind: Kind::Complaint,
                recipient: Some("paul.girard@example.com"),
                status: None,
                reason_contains: "abuse complaint",
            },
        ),
        (
            "mailgun permanent",
            "mailgun",
            mailgun("failed", Some("permanent")),
            Expected {
                kind: Kind::Permanent,
                recipient: Some("lea.moreau@example.net"),
                status: Some("550"),
                reason_contains: "does not exist",
            },
        ),
        (
            "mailgun temporary",
            "Mailgun",
            mailgun("failed", Some("temporary")),
            Expected {
                kind: Kind::Transient,
                recipient: Some("lea.moreau@example.net"),
                status: Some("452"),
                reason_contains: "Mailbox full",
            },
        ),
        (
            "mailgun complaint",
            "mailgun",
            mailgun("complained", None),
            Expected {
                kind: Kind::Complaint,
                recipient: Some("lea.moreau@example.net"),
                status: None,
                reason_contains: "complaint",
            },
        ),
    ];
    for (name, provider, body, expected) in cases {
        let report = parse_webhook(provider, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(name, &report, &expected);
    }
}

#[test]
fn the_ses_feedback_id_identifies_the_report() {
    let body = sns(&ses_bounce("Permanent", "General", None));
    let report = parse_webhook("ses", &body).unwrap();
    assert_eq!(report.format, Format::Ses);
    assert_eq!(
        report.report_id.as_deref(),
        Some("0102019461f0b1c4-feedback-000000")
    );
}

#[test]
fn notifications_about_no_bounce_record_nothing() {
    let confirmation = serde_json::json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425f004aed",
        "TopicArn": "arn:aws:sns:eu-west-3:123456789012:muster-bounces",
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.eu-west-3.amazonaws.com/?Action=ConfirmSubscription",
        "Timestamp": "2025-01-14T09:00:00.000Z"
    })
    .to_string();
    let delivery = serde_json::json!({
        "notificationType": "Delivery",
        "delivery": {"recipients": ["paul.girard@example.com"], "smtpResponse": "250 ok"},
        "mail": ses_mail()
    });
    let cases = [
        ("ses", confirmation.into_bytes()),
        ("ses", sns(&delivery)),
        ("mailgun", mailgun("delivered", None)),
        ("mailgun", mailgun("opened", None)),
    ];
    for (provider, body) in cases {
        let report = parse_webhook(provider, &body).unwrap();
        assert!(report.bounces.is_empty(), "{report:?}");
    }
}

#[test]
fn malformed_webhooks_and_unknown_providers_are_refused() {
    let truncated = &sns(&ses_complaint())[..80];
    assert!(matches!(
        parse_webhook("ses", truncated),
        Err(ParseError::Malformed { format: "SES", .. })
    ));
    let no_event = br#"{"signature": {}, "event": "failed"}"#;
    assert!(matches!(
        parse_webhook("mailgun", no_event),
        Err(ParseError::Malformed {
            format: "Mailgun",
            ..
        })
    ));
    assert_eq!(
        parse_webhook("sendgrid", b"[]"),
        Err(ParseError::UnknownProvider("sendgrid".into()))
    );
}

#[test]
fn only_our_message_ids_name_a_delivery() {
    assert_eq!(
        delivery_id(&format!("<{DELIVERY}@example.org>")),
        Some(delivery())
    );
    assert_eq!(
        delivery_id(&format!(" {DELIVERY}@mail.example.org ")),
        Some(delivery())
    );
    assert_eq!(delivery_id(DELIVERY), None, "no domain");
    assert_eq!(delivery_id("<20250114090211.4XyZ1@mx.example.net>"), None);
}

#[test]
fn status_codes_are_told_from_addresses_and_ports() {
    let cases = [
        (
            "host 192.0.2.25 port 2525 said: 550 5.1.1 unknown",
            Some("5.1.1"),
        ),
        ("said: 550-Mailbox unavailable", Some("550")),
        ("452 4.2.2 over quota.", Some("4.2.2")),
        ("server mx421.example.net timed out", None),
        ("relay 198.51.100.7 unreachable since 2025", None),
    ];
    for (text, expected) in cases {
        assert_eq!(find_status(text).as_deref(), expected, "{text}");
    }
}

#[test]
fn the_worst_entry_of_a_report_stands_for_it() {
    let bounce = |kind| Bounce {
        kind,
        recipient: None,
        status: None,
        reason: String::new(),
    };
    let mut report = Report::new(Format::Dsn);
    report.bounces = vec![bounce(Kind::Transient), bounce(Kind::Permanent)];
    assert_eq!(report.worst().map(|b| b.kind), Some(Kind::Permanent));
    report.bounces.push(bounce(Kind::Complaint));
    assert_eq!(report.worst().map(|b| b.kind), Some(Kind::Complaint));
}
