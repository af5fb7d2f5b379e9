use std::time::Duration;

use muster_runtime::TenantId;
use serde_json::{Value, json};

use crate::fakes::{BOUNCED_DELIVERY, Call, UNKNOWN_DELIVERY, UNREADABLE};
use crate::helpers::{
    TestGateway, WEBHOOK_TOKEN, gateway_with_messaging, gateway_with_messaging_and_sns, json_error,
};
use crate::signing::{SnsSigner, mailgun_signature};

/// An organization's Mailgun webhook signing key.
const MAILGUN_KEY: &str = "key-5d6a0b4f1c2e3a4b5c6d7e8f9a0b1c2d";

fn hook(path: &str) -> String {
    format!("/webhooks/{path}?token={WEBHOOK_TOKEN}")
}

fn mailgun_hook(organization: TenantId) -> String {
    format!("/webhooks/mailgun?token={WEBHOOK_TOKEN}&organization={organization}")
}

/// An SNS notification of a permanent bounce, unsigned.
fn ses_message() -> Value {
    let message = json!({
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": []},
        "mail": {"headers": []}
    });
    json!({
        "Type": "Notification",
        "MessageId": "5b0ab7d4-2f1c-5b8e-9a51-3c0f7f6d2e11",
        "TopicArn": "arn:aws:sns:eu-west-3:123456789012:muster-bounces",
        "Subject": "Amazon SES Email Event Notification",
        "Message": message.to_string(),
        "Timestamp": "2025-01-14T09:02:12.345Z",
        "UnsubscribeURL": "https://sns.eu-west-3.amazonaws.com/?Action=Unsubscribe"
    })
}

fn ses_bounce() -> String {
    ses_message().to_string()
}

/// `ses_message()` signed with `signer`'s key.
fn signed_ses_bounce(signer: &SnsSigner, version: u8) -> String {
    let mut message = ses_message();
    signer.sign(&mut message, version).unwrap();
    message.to_string()
}

/// A Mailgun event whose `signature` is made with `key` at `timestamp`.
fn mailgun_event(key: &str, timestamp: i64, token: &str, event_data: Value) -> String {
    let timestamp = timestamp.to_string();
    let signature = mailgun_signature(key, &timestamp, token);
    json!({
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data
    })
    .to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A new organization whose Mailgun events are signed with `key`.
async fn mailgun_organization(gateway: &TestGateway, key: &str) -> TenantId {
    let (tenant, _) = gateway.tenant().await;
    let set = muster_gateway::set_mailgun_signing_key(&gateway.pool, tenant, key).await;
    assert!(set.unwrap());
    tenant
}

async fn post_json(gateway: &TestGateway, path: &str, body: String) -> (u16, Value) {
    let response = gateway
        .post(path)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const DSN: &str = "From: MAILER-DAEMON@mx.example.net\r\n\
    Subject: Undelivered Mail Returned to Sender\r\n\
    Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
    --b\r\nContent-Type: message/delivery-status\r\n\r\n\
    Final-Recipient: rfc822; jean@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n";

#[tokio::test]
async fn a_webhook_without_the_right_token_is_refused_before_messaging_hears_of_it() {
    let (gateway, mut calls) = gateway_with_messaging().await;

    for path in [
        "/webhooks/ses",
        "/webhooks/mailgun?token=",
        "/webhooks/dsn?token=webhook-tests-tokem",
    ] {
        let response = gateway.post(path).body(ses_bounce()).send().await.unwrap();
        let (status, code, _) = json_error(response).await;
        assert_eq!((status, code.as_str()), (401, "unauthenticated"), "{path}");
    }
    assert!(calls.try_recv().is_err(), "messaging was called");
}

#[tokio::test]
async fn an_sns_subscription_confirmation_is_acknowledged_without_fetching_its_url() {
    let (gateway, mut calls, signer) = gateway_with_messaging_and_sns().await;
    let watcher = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let subscribe_url = format!(
        "http://{}/?Action=ConfirmSubscription&Token=2336412f37",
        watcher.local_addr().unwrap()
    );
    let mut confirmation = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37",
        "TopicArn": "arn:aws:sns:eu-west-3:123456789012:muster-bounces",
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": subscribe_url,
        "Timestamp": "2025-01-14T09:00:00.000Z"
    });
    signer.sign(&mut confirmation, 1).unwrap();

    let response = gateway
        .post(&hook("ses"))
        .header("x-amz-sns-message-type", "SubscriptionConfirmation")
        .body(confirmation.to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["recorded"], 0);
    let fetched = tokio::time::timeout(Duration::from_millis(300), watcher.accept()).await;
    assert!(fetched.is_err(), "the gateway fetched the SubscribeURL");
    assert!(calls.try_recv().is_err(), "a confirmation is not a report");
}

#[tokio::test]
async fn signed_sns_notifications_reach_messaging_as_they_were_posted() {
    let (gateway, mut calls, signer) = gateway_with_messaging_and_sns().await;

    for version in [1, 2] {
        let body = signed_ses_bounce(&signer, version);
        let (status, answer) = post_json(&gateway, &hook("ses"), body.clone()).await;

        assert_eq!(status, 200, "version {version}: {answer}");
        assert_eq!(answer["recorded"], 1);
        assert_eq!(answer["bounces"][0]["delivery_id"], BOUNCED_DELIVERY);
        assert_eq!(answer["bounces"][0]["kind"], "permanent");
        assert_eq!(answer["bounces"][0]["suppressed"], true);
        let expected = Call::IngestBounce {
            tenant: None,
            provider: "ses".into(),
            body,
        };
        assert_eq!(calls.recv().await, Some(expected));
    }
    assert_eq!(signer.fetches(), 1, "the certificate was not cached");
}

#[tokio::test]
async fn tampered_or_unsigned_sns_messages_are_refused_before_messaging_hears_of_them() {
    let (gateway, mut calls, signer) = gateway_with_messaging_and_sns().await;
    let signed: Value = serde_json::from_str(&signed_ses_bounce(&signer, 2)).unwrap();
    let changed = |field: &str, value: Value| {
        let mut message = signed.clone();
        message[field] = value;
        message.to_string()
    };
    let other_text = signer.signature("Message\nsomething else\n", 2).unwrap();
    let local = |host: &str| format!("{host}/sns/SimpleNotificationService-test.pem");
    let port = signer.port();

    let cases = [
        (
            "changed Message",
            changed("Message", json!("{\"notificationType\":\"Bounce\"}")),
        ),
        (
            "changed Type",
            changed("Type", json!("SubscriptionConfirmation")),
        ),
        (
            "another text's signature",
            changed("Signature", json!(other_text)),
        ),
        ("garbled signature", changed("Signature", json!("AAAA"))),
        ("no signature", changed("Signature", Value::Null)),
        ("version 3", changed("SignatureVersion", json!("3"))),
        ("v1 label on v2", changed("SignatureVersion", json!("1"))),
        (
            "wrong cert host",
            changed(
                "SigningCertURL",
                json!(local(&format!("http://localhost:{port}"))),
            ),
        ),
        (
            "no https",
            changed(
                "SigningCertURL",
                json!(local(&format!("https://127.0.0.1:{port}"))),
            ),
        ),
        (
            "certificate missing",
            changed(
                "SigningCertURL",
                json!(format!("{}nothing.pem", signer.url_prefix())),
            ),
        ),
    ];
    for (case, body) in cases {
        let (status, answer) = post_json(&gateway, &hook("ses"), body).await;
        assert_eq!(status, 401, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthenticated", "{case}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("not a message signed by Amazon SNS"),
            "{case}: {message}"
        );
    }
    let raw_delivery = json!({"notificationType": "Bounce"}).to_string();
    let (status, _) = post_json(&gateway, &hook("ses"), raw_delivery).await;
    assert_eq!(status, 400, "an unsigned raw delivery");

    assert!(calls.try_recv().is_err(), "messaging was called");
    assert_eq!(
        signer.fetches(),
        1,
        "a certificate was fetched from an untrusted URL"
    );
}

#[tokio::test]
async fn a_signed_mailgun_event_reaches_messaging_for_its_organization_alone() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let tenant = mailgun_organization(&gateway, MAILGUN_KEY).await;
    let event = json!({"event": "failed", "severity": "permanent"});
    let body = mailgun_event(MAILGUN_KEY, now(), "c9b2f1a07e", event);

    let (status, answer) = post_json(&gateway, &mailgun_hook(tenant), body.clone()).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["bounces"][0]["delivery_id"], BOUNCED_DELIVERY);
    let expected = Call::IngestBounce {
        tenant: Some(tenant),
        provider: "mailgun".into(),
        body,
    };
    assert_eq!(calls.recv().await, Some(expected));
}

#[tokio::test]
async fn mailgun_events_unsigned_stale_replayed_or_of_another_organization_are_refused() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let tenant = mailgun_organization(&gateway, MAILGUN_KEY).await;
    let other = mailgun_organization(&gateway, "key-of-another-organization").await;
    let (keyless, _) = gateway.tenant().await;
    let event = || json!({"event": "failed", "severity": "permanent"});
    let fresh = mailgun_event(MAILGUN_KEY, now(), "0f1e2d3c4b", event());
    let mut forged: Value = serde_json::from_str(&fresh).unwrap();
    forged["signature"]["signature"] = json!(mailgun_signature("guess", "1", "0f1e2d3c4b"));
    let unsigned = json!({"event-data": event()}).to_string();

    let cases = [
        ("no organization", hook("mailgun"), fresh.clone(), 400),
        (
            "another organization's key",
            mailgun_hook(other),
            fresh.clone(),
            401,
        ),
        (
            "an organization without a key",
            mailgun_hook(keyless),
            fresh.clone(),
            401,
        ),
        (
            "a forged signature",
            mailgun_hook(tenant),
            forged.to_string(),
            401,
        ),
        ("no signature", mailgun_hook(tenant), unsigned, 401),
        (
            "a 16-minute-old signature",
            mailgun_hook(tenant),
            mailgun_event(MAILGUN_KEY, now() - 16 * 60, "5a6b7c8d9e", event()),
            401,
        ),
    ];
    for (case, path, body, expected) in cases {
        let (status, answer) = post_json(&gateway, &path, body).await;
        assert_eq!(status, expected, "{case}: {answer}");
    }
    assert!(calls.try_recv().is_err(), "messaging was called");

    let (status, _) = post_json(&gateway, &mailgun_hook(tenant), fresh.clone()).await;
    assert_eq!(status, 200);
    assert!(calls.recv().await.is_some());
    let (status, answer) = post_json(&gateway, &mailgun_hook(tenant), fresh).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (409, &json!("already_exists"))
    );
    assert!(calls.try_recv().is_err(), "a replay reached messaging");
}

#[tokio::test]
async fn a_returned_message_reaches_messaging_raw() {
    let (gateway, mut calls) = gateway_with_messaging().await;

    let response = gateway
        .post(&hook("dsn"))
        .header("content-type", "message/rfc822")
        .body(DSN)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let expected = Call::IngestBounce {
        tenant: None,
        provider: String::new(),
        body: DSN.into(),
    };
    assert_eq!(calls.recv().await, Some(expected));
}

#[tokio::test]
async fn a_report_about_mail_that_is_not_ours_is_acknowledged_and_ignored() {
    let (gateway, _calls) = gateway_with_messaging().await;
    let body = format!("Message-ID: <{UNKNOWN_DELIVERY}@example.org>\r\n\r\nbounced\r\n");

    let response = gateway.post(&hook("dsn")).body(body).send().await.unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["recorded"], 0);
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap()
            .contains(UNKNOWN_DELIVERY),
        "{answer}"
    );
}

#[tokio::test]
async fn an_unreadable_provider_body_is_a_400_but_an_auto_reply_is_acknowledged() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let tenant = mailgun_organization(&gateway, MAILGUN_KEY).await;
    let unreadable = mailgun_event(MAILGUN_KEY, now(), "7e8f9a0b1c", json!(UNREADABLE));

    // Refused by messaging, so the token stays unspent for the provider's retry.
    for attempt in 1..=2 {
        let from_provider = gateway
            .post(&mailgun_hook(tenant))
            .body(unreadable.clone())
            .send()
            .await
            .unwrap();
        let (status, code, _) = json_error(from_provider).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_argument"),
            "{attempt}"
        );
        assert!(
            calls.recv().await.is_some(),
            "attempt {attempt} missed messaging"
        );
    }

    let auto_reply = format!("Subject: Absent\r\n\r\n{UNREADABLE}\r\n");
    let from_relay = gateway
        .post(&hook("dsn"))
        .body(auto_reply)
        .send()
        .await
        .unwrap();
    assert_eq!(from_relay.status().as_u16(), 200);
    let answer: Value = from_relay.json().await.unwrap();
    assert_eq!(answer["recorded"], 0);
}
