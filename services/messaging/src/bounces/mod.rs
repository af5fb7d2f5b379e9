//! Bounces and complaints that arrive after a message was accepted: parsing
//! what mail servers and providers report (RFC 3464 delivery status
//! notifications, RFC 5965 complaint reports, common plain-text bounces, the
//! Amazon SES and Mailgun webhooks) and recording what they mean.

mod arf;
mod dsn;
mod fields;
pub mod listing;
mod mailgun;
mod plain;
pub mod record;
mod ses;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use uuid::Uuid;

/// What a report says happened to a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// May succeed later (mailbox full, greylisted, server down).
    Transient,
    /// Will not succeed (no such mailbox or domain, refused for good).
    Permanent,
    /// The recipient reported the message as spam.
    Complaint,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Complaint => "complaint",
        }
    }

    /// The kind an SMTP status implies: `5.x.x`/`5xx` permanent, `4.x.x`/`4xx` transient.
    fn of_status(status: &str) -> Option<Self> {
        match status.as_bytes().first()? {
            b'5' => Some(Self::Permanent),
            b'4' => Some(Self::Transient),
            _ => None,
        }
    }
}

/// The format a report came in, stored as the bounce's provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An RFC 3464 delivery status notification.
    Dsn,
    /// An RFC 5965 abuse feedback report.
    Arf,
    /// A bounce written for people, without a machine-readable part.
    Text,
    /// An Amazon SES notification, usually inside an SNS envelope.
    Ses,
    /// A Mailgun webhook event.
    Mailgun,
}

impl Format {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dsn => "dsn",
            Self::Arf => "arf",
            Self::Text => "text",
            Self::Ses => "ses",
            Self::Mailgun => "mailgun",
        }
    }
}

/// One recipient's bounce or complaint, as a report states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub kind: Kind,
    /// The address the report names; complaint reports often leave it out.
    pub recipient: Option<String>,
    /// The enhanced status code (`5.1.1`) or SMTP reply code (`550`), if given.
    pub status: Option<String>,
    /// The reason in the reporter's words.
    pub reason: String,
}

/// What one report says: which message it is about and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub format: Format,
    /// The Message-ID of the message that bounced, without angle brackets.
    pub message_id: Option<String>,
    /// The reporter's own identifier of the report, for finding it there.
    pub report_id: Option<String>,
    /// Empty when the report needs nothing recorded (a delivery notice).
    pub bounces: Vec<Bounce>,
}

impl Report {
    fn new(format: Format) -> Self {
        Self {
            format,
            message_id: None,
            report_id: None,
            bounces: Vec::new(),
        }
    }

    /// The delivery the message was: our Message-ID is `<{delivery}@{domain}>`.
    pub fn delivery_id(&self) -> Option<Uuid> {
        delivery_id(self.message_id.as_deref()?)
    }

    /// The most severe of the bounces: a message of ours has one recipient,
    /// so several entries describe one address (after forwarding, say).
    pub fn worst(&self) -> Option<&Bounce> {
        self.bounces.iter().max_by_key(|bounce| bounce.kind)
    }
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not an e-mail message")]
    NotAMessage,
    #[error("not a bounce or complaint report")]
    NotAReport,
    #[error("not a {format} notification: {detail}")]
    Malformed {
        format: &'static str,
        detail: String,
    },
    #[error("unknown provider {0:?}; expected \"ses\" or \"mailgun\"")]
    UnknownProvider(String),
}

/// Reads a provider's webhook body; `provider` is `ses` or `mailgun`.
pub fn parse_webhook(provider: &str, body: &[u8]) -> Result<Report, ParseError> {
    match provider.trim().to_ascii_lowercase().as_str() {
        "ses" => ses::parse(body),
        "mailgun" => mailgun::parse(body),
        other => Err(ParseError::UnknownProvider(other.to_owned())),
    }
}

/// Reads a returned message: a delivery status notification, a complaint
/// report, or a plain-text bounce.
pub fn parse_message(raw: &[u8]) -> Result<Report, ParseError> {
    let message = MessageParser::default()
        .parse(raw)
        .filter(|message| !message.headers().is_empty())
        .ok_or(ParseError::NotAMessage)?;
    let mut report = match report_type(&message).as_deref() {
        Some("feedback-report") => arf::parse(&message),
        _ if dsn::status_part(&message).is_some() => dsn::parse(&message),
        _ => plain::parse(&message),
    }
    .ok_or(ParseError::NotAReport)?;
    report.report_id = message.message_id().map(str::to_owned);
    if report.message_id.is_none() {
        report.message_id = returned_message_id(&message);
    }
    Ok(report)
}

/// The `report-type` of a `multipart/report` message, lowercased.
fn report_type(message: &Message<'_>) -> Option<String> {
    let content_type = message.content_type()?;
    let is_report = content_type.ctype().eq_ignore_ascii_case("multipart")
        && content_type
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"));
    is_report
        .then(|| content_type.attribute("report-type"))
        .flatten()
        .map(str::to_ascii_lowercase)
}

/// Whether a part's content type is `ctype/subtype`.
fn is_type(part: &mail_parser::MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    part.content_type().is_some_and(|t| {
        t.ctype().eq_ignore_ascii_case(ctype)
            && t.subtype().is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

/// The Message-ID of the message a report returns: from the attached message,
/// from its attached headers, or from a `Message-ID:` line quoted in the text.
fn returned_message_id(message: &Message<'_>) -> Option<String> {
    let attached = message
        .parts
        .iter()
        .skip(1)
        .find_map(|part| match &part.body {
            PartType::Message(inner) => inner.message_id().map(str::to_owned),
            _ if part
                .content_type()
                .and_then(|t| t.subtype())
                .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers")) =>
            {
                MessageParser::default()
                    .parse_headers(part.contents())
                    .and_then(|headers| headers.message_id().map(str::to_owned))
            }
            _ => None,
        });
    attached.or_else(|| {
        message
            .parts
            .iter()
            .filter_map(|part| part.text_contents())
            .find_map(quoted_message_id)
    })
}

/// The value of the first `Message-ID:` line of `text`.
fn quoted_message_id(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.trim_start().split_once(':')?;
        name.eq_ignore_ascii_case("message-id")
            .then(|| strip_brackets(value))
            .filter(|id| !id.is_empty())
    })
}

/// `<id>` → `id`, trimmed.
fn strip_brackets(value: &str) -> String {
    let value = value.trim();
    let value = value.strip_prefix('<').unwrap_or(value);
    value.strip_suffix('>').unwrap_or(value).trim().to_owned()
}

/// The delivery id in one of our Message-IDs, `<{delivery}@{domain}>`.
pub fn delivery_id(message_id: &str) -> Option<Uuid> {
    let id = strip_brackets(message_id);
    let (local, _domain) = id.split_once('@')?;
    Uuid::parse_str(local).ok()
}

/// The first SMTP status in `text`: an enhanced code (`5.1.1`) when there is
/// one, otherwise a reply code (`550`).
fn find_status(text: &str) -> Option<String> {
    let words = || {
        text.split(|c: char| c.is_whitespace() || c == '-')
            .map(|word| word.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
    };
    let enhanced = words().find(|word| is_enhanced_status(word));
    let reply = || words().find(|word| is_reply_code(word));
    enhanced.or_else(reply).map(str::to_owned)
}

/// `5.1.1`, `4.7.0`: class 2, 4 or 5, then two numbers of up to three digits.
fn is_enhanced_status(word: &str) -> bool {
    let mut pieces = word.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
    else {
        return false;
    };
    let number = |s: &str| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    matches!(class, "2" | "4" | "5") && number(subject) && number(detail)
}

/// `550`, `421`: three digits starting with 2, 4 or 5.
fn is_reply_code(word: &str) -> bool {
    word.len() == 3
        && matches!(word.as_bytes()[0], b'2' | b'4' | b'5')
        && word.bytes().all(|b| b.is_ascii_digit())
}

/// `jean@example.org` from `<jean@example.org>`, `rfc822; jean@example.org`, …
fn clean_address(value: &str) -> Option<String> {
    let address = fields::untyped(value)
        .trim_matches(|c: char| "<>()[]\"',;:.".contains(c))
        .trim();
    let (local, domain) = address.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>');
    plausible.then(|| address.to_owned())
}

/// Shortens `text` to one line of at most 500 characters.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests;
