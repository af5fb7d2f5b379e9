//! Mailgun webhook events (JSON): `failed` with a `permanent` or
//! `temporary` severity, and `complained`. Other events need nothing recorded.

use serde::Deserialize;

use super::{Bounce, Format, Kind, ParseError, Report};

#[derive(Deserialize)]
struct Webhook {
    #[serde(rename = "event-data")]
    event_data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    event: String,
    id: Option<String>,
    severity: Option<String>,
    reason: Option<String>,
    recipient: Option<String>,
    message: Option<MailgunMessage>,
    #[serde(rename = "delivery-status")]
    delivery_status: Option<DeliveryStatus>,
}

#[derive(Deserialize)]
struct MailgunMessage {
    #[serde(default)]
    headers: Headers,
}

#[derive(Deserialize, Default)]
struct Headers {
    #[serde(rename = "message-id")]
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct DeliveryStatus {
    /// A number (`550`, or Mailgun's own `605`…); text is tolerated.
    code: Option<serde_json::Value>,
    message: Option<String>,
    description: Option<String>,
}

/// The bounce or complaint of a Mailgun event.
pub fn parse(body: &[u8]) -> Result<Report, ParseError> {
    let webhook: Webhook = serde_json::from_slice(body).map_err(|e| ParseError::Malformed {
        format: "Mailgun",
        detail: e.to_string(),
    })?;
    let event = webhook.event_data;
    let mut report = Report::new(Format::Mailgun);
    report.report_id = event.id.clone();
    report.message_id = event
        .message
        .as_ref()
        .and_then(|m| m.headers.message_id.as_deref())
        .map(super::strip_brackets);

    let kind = match (event.event.as_str(), event.severity.as_deref()) {
        ("failed", Some("permanent")) => Kind::Permanent,
        ("failed", _) => Kind::Transient,
        ("complained", _) => Kind::Complaint,
        _ => return Ok(report),
    };
    let status = event.delivery_status.as_ref().and_then(status_code);
    report.bounces.push(Bounce {
        kind,
        recipient: event.recipient.as_deref().and_then(super::clean_address),
        status,
        reason: super::one_line(&reason(&event, kind)),
    });
    Ok(report)
}

fn status_code(status: &DeliveryStatus) -> Option<String> {
    match status.code.as_ref()? {
        serde_json::Value::Number(code) => Some(code.to_string()),
        serde_json::Value::String(code) if !code.is_empty() => Some(code.clone()),
        _ => None,
    }
}

/// The receiving server's answer, else Mailgun's description, else its reason.
fn reason(event: &EventData, kind: Kind) -> String {
    let status = event.delivery_status.as_ref();
    let said = [
        status.and_then(|s| s.message.as_deref()),
        status.and_then(|s| s.description.as_deref()),
        event.reason.as_deref(),
    ];
    let fallback = match kind {
        Kind::Complaint => "complaint reported through Mailgun",
        _ => "delivery failed",
    };
    said.into_iter()
        .flatten()
        .map(str::trim)
        .find(|text| !text.is_empty())
        .unwrap_or(fallback)
        .to_owned()
}
