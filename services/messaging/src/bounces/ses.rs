//! Amazon SES bounce and complaint notifications, as SNS posts them over
//! HTTPS: an envelope whose `Message` is the SES notification as a JSON
//! string. A raw-delivery subscription posts the SES notification alone.

use serde::Deserialize;

use super::{Bounce, Format, Kind, ParseError, Report};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    #[serde(rename = "Type")]
    kind: String,
    message_id: Option<String>,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    /// `eventType` when it comes from a configuration set's event publishing.
    #[serde(alias = "eventType")]
    notification_type: String,
    mail: Mail,
    bounce: Option<SesBounce>,
    complaint: Option<Complaint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    /// SES's own id of the message, not our Message-ID.
    message_id: Option<String>,
    #[serde(default)]
    headers: Vec<Header>,
    common_headers: Option<CommonHeaders>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommonHeaders {
    message_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    bounce_sub_type: Option<String>,
    #[serde(default)]
    bounced_recipients: Vec<BouncedRecipient>,
    feedback_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BouncedRecipient {
    email_address: String,
    status: Option<String>,
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    #[serde(default)]
    complained_recipients: Vec<ComplainedRecipient>,
    complaint_feedback_type: Option<String>,
    feedback_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComplainedRecipient {
    email_address: String,
}

fn malformed(detail: impl ToString) -> ParseError {
    ParseError::Malformed {
        format: "SES",
        detail: detail.to_string(),
    }
}

/// The bounces of an SNS-delivered SES notification; subscription messages
/// and delivery notifications need nothing recorded.
pub fn parse(body: &[u8]) -> Result<Report, ParseError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(malformed)?;
    let (notification, sns_id) = if value.get("Type").is_some() {
        let envelope: Envelope = serde_json::from_value(value).map_err(malformed)?;
        if envelope.kind != "Notification" {
            return Ok(Report::new(Format::Ses));
        }
        let notification: Notification =
            serde_json::from_str(&envelope.message).map_err(malformed)?;
        (notification, envelope.message_id)
    } else {
        (serde_json::from_value(value).map_err(malformed)?, None)
    };

    let mut report = Report::new(Format::Ses);
    report.message_id = our_message_id(&notification.mail);
    report.report_id = sns_id.or_else(|| notification.mail.message_id.clone());
    match notification.notification_type.as_str() {
        "Bounce" => {
            let bounce = notification
                .bounce
                .ok_or_else(|| malformed("a Bounce notification without its bounce"))?;
            report.report_id = bounce.feedback_id.clone().or(report.report_id);
            report.bounces = bounces(&bounce);
        }
        "Complaint" => {
            let complaint = notification
                .complaint
                .ok_or_else(|| malformed("a Complaint notification without its complaint"))?;
            report.report_id = complaint.feedback_id.clone().or(report.report_id);
            report.bounces = complaints(&complaint);
        }
        _ => {}
    }
    Ok(report)
}

/// Our Message-ID among the original headers SES echoes back.
fn our_message_id(mail: &Mail) -> Option<String> {
    let header = mail
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("message-id"))
        .map(|h| h.value.as_str());
    let common = || mail.common_headers.as_ref()?.message_id.as_deref();
    header.or_else(common).map(super::strip_brackets)
}

fn bounces(bounce: &SesBounce) -> Vec<Bounce> {
    // `Undetermined` is not known to be permanent: treat it as transient.
    let kind = match bounce.bounce_type.as_str() {
        "Permanent" => Kind::Permanent,
        _ => Kind::Transient,
    };
    bounce
        .bounced_recipients
        .iter()
        .map(|recipient| {
            let status = recipient.status.clone().or_else(|| {
                recipient
                    .diagnostic_code
                    .as_deref()
                    .and_then(super::find_status)
            });
            let reason = match (&recipient.diagnostic_code, &bounce.bounce_sub_type) {
                (Some(diagnostic), _) => super::fields::untyped(diagnostic).to_owned(),
                (None, Some(sub_type)) => format!("{} bounce ({sub_type})", bounce.bounce_type),
                (None, None) => format!("{} bounce", bounce.bounce_type),
            };
            Bounce {
                kind,
                recipient: super::clean_address(&recipient.email_address),
                status,
                reason: super::one_line(&reason),
            }
        })
        .collect()
}

fn complaints(complaint: &Complaint) -> Vec<Bounce> {
    let reason = match &complaint.complaint_feedback_type {
        Some(feedback_type) => format!("{feedback_type} complaint reported through SES"),
        None => "complaint reported through SES".to_owned(),
    };
    complaint
        .complained_recipients
        .iter()
        .map(|recipient| Bounce {
            kind: Kind::Complaint,
            recipient: super::clean_address(&recipient.email_address),
            status: None,
            reason: reason.clone(),
        })
        .collect()
}
