//! RFC 5965 abuse reports (ARF): a `multipart/report` whose
//! `message/feedback-report` part says why the recipient complained, sent by
//! mailbox providers' feedback loops when someone clicks "this is spam".

use mail_parser::Message;

use super::fields;
use super::{Bounce, Format, Kind, Report};

/// Feedback types that mean the recipient objects to the mail; `not-spam`
/// and `virus` reports do not.
const COMPLAINTS: &[&str] = &["abuse", "fraud"];

/// The complaint of a feedback report; `None` when it has no feedback part.
pub fn parse(message: &Message<'_>) -> Option<Report> {
    let part = message
        .parts
        .iter()
        .find(|part| super::is_type(part, "message", "feedback-report"))?;
    let text = String::from_utf8_lossy(part.contents());
    let groups = fields::groups(&text);
    let group = groups.first()?;

    let mut report = Report::new(Format::Arf);
    let feedback_type = group.get("feedback-type")?.to_ascii_lowercase();
    if !COMPLAINTS.contains(&feedback_type.as_str()) {
        return Some(report);
    }
    let reason = match group.get("user-agent") {
        Some(agent) => format!("{feedback_type} complaint reported by {agent}"),
        None => format!("{feedback_type} complaint"),
    };
    report.bounces.push(Bounce {
        kind: Kind::Complaint,
        recipient: group.get("original-rcpt-to").and_then(super::clean_address),
        status: None,
        reason: super::one_line(&reason),
    });
    Some(report)
}
