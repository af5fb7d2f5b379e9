//! Bounces written only for people ("Mail delivery failed … The following
//! address(es) failed"), as some mail servers still send: the failed
//! addresses and the SMTP answer quoted after each.

use mail_parser::Message;

use super::{Bounce, Format, Kind, Report};

/// Phrases that introduce the list of failed addresses.
const FAILED: &[&str] = &[
    "following address(es) failed",
    "following addresses had permanent fatal errors",
    "wasn't able to deliver your message to the following addresses",
    "could not be delivered to the following",
    "delivery to the following recipient",
    "could not be delivered to one or more recipients",
    "n'a pas pu être remis",
];

/// Phrases that start the copy of the returned message, whose addresses
/// (our sender's, the recipient's in `To:`) are not the failed ones.
const COPY: &[&str] = &[
    "this is a copy of the message",
    "below this line is a copy of the message",
    "original message follows",
    "----- original message",
    "------ this is a copy",
];

/// Subjects of bounces that lack a phrase above.
const SUBJECTS: &[&str] = &[
    "mail delivery failed",
    "undeliver",
    "delivery status notification",
    "failure notice",
    "returned mail",
    "delivery failure",
    "non remis",
    "échec de la remise",
];

const PERMANENT: &[&str] = &["permanent error", "failed permanently", "permanent failure"];
const TRANSIENT: &[&str] = &[
    "temporary error",
    "temporary failure",
    "will retry",
    "will keep trying",
    "has not yet been delivered",
    "delayed",
];

/// The failed addresses of a plain-text bounce; `None` when the message
/// does not read like one.
pub fn parse(message: &Message<'_>) -> Option<Report> {
    let text = message.body_text(0)?;
    // ASCII lowercasing keeps byte offsets, so `lower` indexes `text` too.
    let lower = text.to_ascii_lowercase();
    let start = match FAILED
        .iter()
        .find_map(|p| lower.find(p).map(|at| at + p.len()))
    {
        Some(start) => start,
        None if subject_says_bounce(message) => 0,
        None => return None,
    };
    let end = COPY
        .iter()
        .filter_map(|p| lower[start..].find(p).map(|at| start + at))
        .min()
        .unwrap_or(lower.len());
    let section = &text[start..end];
    let overall = default_kind(&lower[..end]);

    let addresses = addresses(section);
    if addresses.is_empty() {
        return None;
    }
    let mut report = Report::new(Format::Text);
    for (i, (address, at)) in addresses.iter().enumerate() {
        let until = addresses
            .get(i + 1)
            .map_or(section.len(), |(_, next)| *next);
        let about = &section[*at..until];
        let status = super::find_status(about);
        let kind = status
            .as_deref()
            .and_then(Kind::of_status)
            .or(overall)
            .unwrap_or(Kind::Transient);
        report.bounces.push(Bounce {
            kind,
            recipient: Some(address.clone()),
            reason: reason(about, status.as_deref()),
            status,
        });
    }
    Some(report)
}

fn subject_says_bounce(message: &Message<'_>) -> bool {
    let subject = message.subject().unwrap_or_default().to_lowercase();
    SUBJECTS.iter().any(|hint| subject.contains(hint))
}

/// What the whole text says when no code does; unsure is transient, so that
/// a misread bounce never suppresses an address at once.
fn default_kind(text: &str) -> Option<Kind> {
    if PERMANENT.iter().any(|p| text.contains(p)) {
        Some(Kind::Permanent)
    } else if TRANSIENT.iter().any(|p| text.contains(p)) {
        Some(Kind::Transient)
    } else {
        None
    }
}

/// Each distinct address of `section` and where it first appears.
fn addresses(section: &str) -> Vec<(String, usize)> {
    let mut found: Vec<(String, usize)> = Vec::new();
    let mut offset = 0;
    for word in section.split_inclusive(char::is_whitespace) {
        let at = offset;
        offset += word.len();
        // `RCPT TO:<jean@example.org>:` names the address after the colon.
        let word = word.rsplit(':').find(|piece| piece.contains('@'));
        let Some(address) = word.and_then(super::clean_address) else {
            continue;
        };
        if !found
            .iter()
            .any(|(known, _)| known.eq_ignore_ascii_case(&address))
        {
            found.push((address, at));
        }
    }
    found
}

/// The line quoting the SMTP answer, or the first line after the address.
fn reason(about: &str, status: Option<&str>) -> String {
    let mut lines = about.lines().map(str::trim).filter(|l| !l.is_empty());
    let quoted = status.and_then(|code| about.lines().find(|line| line.contains(code)));
    let line = quoted.or_else(|| lines.nth(1)).unwrap_or("delivery failed");
    super::one_line(line)
}
