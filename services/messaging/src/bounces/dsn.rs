//! RFC 3464 delivery status notifications: a `multipart/report` whose
//! `message/delivery-status` part holds one group of fields per recipient.

use mail_parser::{Message, MessagePart};

use super::fields::{self, Group};
use super::{Bounce, Format, Kind, Report};

/// The `message/delivery-status` part (or its RFC 6533 `global-` twin).
pub fn status_part<'a>(message: &'a Message<'a>) -> Option<&'a MessagePart<'a>> {
    message.parts.iter().find(|part| {
        super::is_type(part, "message", "delivery-status")
            || super::is_type(part, "message", "global-delivery-status")
    })
}

/// The failed and delayed recipients of a notification; `None` when it has
/// no delivery-status part.
pub fn parse(message: &Message<'_>) -> Option<Report> {
    let part = status_part(message)?;
    let text = String::from_utf8_lossy(part.contents());
    let mut report = Report::new(Format::Dsn);
    report.bounces = fields::groups(&text).iter().filter_map(recipient).collect();
    Some(report)
}

/// The bounce one per-recipient group describes; `None` for a group that is
/// not about a recipient, or reports a delivery.
fn recipient(group: &Group) -> Option<Bounce> {
    let address = group
        .get("original-recipient")
        .or_else(|| group.get("final-recipient"))?;
    let action = group.get("action").unwrap_or("failed").to_ascii_lowercase();
    let status = group
        .get("status")
        .and_then(|status| status.split_whitespace().next())
        .map(str::to_owned);
    let diagnostic = group.get("diagnostic-code").map(fields::untyped);
    let status = status.or_else(|| diagnostic.and_then(super::find_status));

    let kind = match action.as_str() {
        "failed" => status
            .as_deref()
            .and_then(Kind::of_status)
            .unwrap_or(Kind::Permanent),
        "delayed" => Kind::Transient,
        _ => return None,
    };
    let reason = match diagnostic {
        Some(diagnostic) => super::one_line(diagnostic),
        None => format!(
            "{action}, status {}",
            status.as_deref().unwrap_or("not given")
        ),
    };
    Some(Bounce {
        kind,
        recipient: super::clean_address(address),
        status,
        reason,
    })
}
