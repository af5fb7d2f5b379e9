//! The text form of segments, parsed by hand into a `SegmentExpr`:
//! `tag:adhérent AND (departement:75 OR departement:93) AND NOT consent:email=withdrawn`.
//! The grammar is in docs/segments.md; errors name the column (1-based, in characters).

use chrono::{DateTime, NaiveTime, Utc};
use muster_proto::Timestamp;
use muster_proto::contacts::v1::segment_expr::Node;
use muster_proto::contacts::v1::{
    ConsentChannel, ConsentCondition, ConsentState, DonationTotal, FieldCondition, FieldOperator,
    SegmentExpr, SegmentExprList, TimeRange,
};

use super::expr::{
    FieldOp, FieldPart, NUL_MESSAGE, clip, defined, field_test, postal_prefix, quote,
};
use super::{MAX_CONDITIONS, MAX_DEPTH};
use crate::domain::custom_field::{Definitions, canonical_text};
use crate::domain::date;
use crate::domain::territory;

/// The longest query accepted, in characters.
pub const MAX_LENGTH: usize = 10_000;

/// Why a query could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

/// Parses the text form of a segment that names no custom field.
pub fn parse(query: &str) -> Result<SegmentExpr, ParseError> {
    parse_with(query, &Definitions::default())
}

/// Parses the text form of a segment, checking its custom field conditions
/// against the organization's `fields` (errors at the key, operator or value).
pub fn parse_with(query: &str, fields: &Definitions) -> Result<SegmentExpr, ParseError> {
    let length = query.chars().count();
    if length > MAX_LENGTH {
        return Err(ParseError {
            column: MAX_LENGTH + 1,
            message: format!("the query is longer than {MAX_LENGTH} characters; save parts of it"),
        });
    }
    let tokens = tokenize(query)?;
    let mut parser = Parser {
        fields,
        tokens,
        next: 0,
        end: length + 1,
        conditions: 0,
    };
    let expr = parser.or(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) => Err(parser.error_at(
            token.column,
            format!(
                "expected AND, OR or the end, found {}{}",
                token.describe(),
                token.quoting_hint()
            ),
        )),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Open,
    Close,
    /// A run of characters up to a space or a parenthesis, quotes removed.
    Atom {
        text: String,
        quoted: bool,
    },
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    column: usize,
}

impl Token {
    fn describe(&self) -> String {
        match &self.kind {
            Kind::Open => "'('".into(),
            Kind::Close => "')'".into(),
            Kind::Atom { text, .. } => quote(text),
        }
    }

    /// A reminder to quote, for a word found where a condition has ended.
    fn quoting_hint(&self) -> &'static str {
        match self.kind {
            Kind::Atom { .. } => "; a value with spaces must be quoted, as in tag:\"comité local\"",
            _ => "",
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(&self.kind, Kind::Atom { text, quoted: false } if text.eq_ignore_ascii_case(word))
    }
}

fn tokenize(query: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = query.chars().collect();
    if let Some(at) = chars.iter().position(|&c| c == '\0') {
        return Err(ParseError {
            column: at + 1,
            message: format!("the query {NUL_MESSAGE}"),
        });
    }
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let column = i + 1;
        match chars[i] {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token {
                    kind: Kind::Open,
                    column,
                });
                i += 1;
            }
            ')' => {
                tokens.push(Token {
                    kind: Kind::Close,
                    column,
                });
                i += 1;
            }
            _ => {
                let mut text = String::new();
                let mut quoted = false;
                while i < chars.len() && !chars[i].is_whitespace() && !"()".contains(chars[i]) {
                    if chars[i] != '"' {
                        text.push(chars[i]);
                        i += 1;
                        continue;
                    }
                    quoted = true;
                    let opening = i + 1;
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => {
                                return Err(ParseError {
                                    column: opening,
                                    message: "this quote is never closed; end the value with \""
                                        .into(),
                                });
                            }
                            Some('"') => {
                                i += 1;
                                break;
                            }
                            Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\')) => {
                                text.push(chars[i + 1]);
                                i += 2;
                            }
                            Some(&c) => {
                                text.push(c);
                                i += 1;
                            }
                        }
                    }
                }
                tokens.push(Token {
                    kind: Kind::Atom { text, quoted },
                    column,
                });
            }
        }
    }
    Ok(tokens)
}

struct Parser<'f> {
    fields: &'f Definitions,
    tokens: Vec<Token>,
    next: usize,
    /// The column just past the end of the query.
    end: usize,
    /// The conditions read so far, against [`MAX_CONDITIONS`].
    conditions: usize,
}

const CONDITION_HELP: &str = "expected a condition such as tag:NAME, departement:75, \
     consent:email=granted, has:email or a '('";

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn error_at(&self, column: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            column,
            message: message.into(),
        }
    }

    fn or(&mut self, depth: usize) -> Result<SegmentExpr, ParseError> {
        let mut items = vec![self.and(depth)?];
        while self.peek().is_some_and(|t| t.keyword("or")) {
            self.next += 1;
            items.push(self.and(depth)?);
        }
        Ok(combine(items, Node::Or))
    }

    fn and(&mut self, depth: usize) -> Result<SegmentExpr, ParseError> {
        let mut items = vec![self.unary(depth)?];
        while self.peek().is_some_and(|t| t.keyword("and")) {
            self.next += 1;
            items.push(self.unary(depth)?);
        }
        Ok(combine(items, Node::And))
    }

    fn unary(&mut self, depth: usize) -> Result<SegmentExpr, ParseError> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.error_at(self.end, format!("the query ends early: {CONDITION_HELP}")));
        };
        let deeper = |parser: &Self| match depth + 1 > MAX_DEPTH {
            true => Err(parser.error_at(
                token.column,
                format!("nested deeper than {MAX_DEPTH} levels; flatten the conditions"),
            )),
            false => Ok(depth + 1),
        };
        if token.keyword("not") {
            let depth = deeper(self)?;
            self.next += 1;
            let inner = self.unary(depth)?;
            return Ok(SegmentExpr {
                node: Some(Node::Not(Box::new(inner))),
            });
        }
        match &token.kind {
            Kind::Open => {
                let depth = deeper(self)?;
                self.next += 1;
                let inner = self.or(depth)?;
                match self.peek() {
                    Some(Token {
                        kind: Kind::Close, ..
                    }) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(self.error_at(
                        other.column,
                        format!(
                            "expected AND, OR or ')', found {}{}",
                            other.describe(),
                            other.quoting_hint()
                        ),
                    )),
                    None => {
                        Err(self
                            .error_at(token.column, "this parenthesis is never closed; add a ')'"))
                    }
                }
            }
            Kind::Atom { quoted: false, .. } if token.keyword("and") || token.keyword("or") => {
                Err(self.error_at(
                    token.column,
                    format!("{CONDITION_HELP}, found {}", token.describe()),
                ))
            }
            Kind::Close => Err(self.error_at(token.column, format!("{CONDITION_HELP}, found ')'"))),
            Kind::Atom { text, .. } => {
                self.conditions += 1;
                if self.conditions > MAX_CONDITIONS {
                    return Err(self.error_at(
                        token.column,
                        format!(
                            "the query has more than {MAX_CONDITIONS} conditions; \
                             split it or use lists"
                        ),
                    ));
                }
                self.next += 1;
                leaf(text, token.column, self.fields).map(|node| SegmentExpr { node: Some(node) })
            }
        }
    }
}

fn combine(mut items: Vec<SegmentExpr>, node: fn(SegmentExprList) -> Node) -> SegmentExpr {
    match items.len() {
        1 => items.remove(0),
        _ => SegmentExpr {
            node: Some(node(SegmentExprList { items })),
        },
    }
}

/// One condition, `field` `operator` `value`, starting at `column`.
fn leaf(text: &str, column: usize, fields: &Definitions) -> Result<Node, ParseError> {
    let key_length = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .unwrap_or(text.len());
    let (key, rest) = text.split_at(key_length);
    let operator = [">=", "<=", ":", ">", "<", "="]
        .into_iter()
        .find(|op| rest.starts_with(op));
    let Some(operator) = operator else {
        return Err(ParseError {
            column,
            message: format!("{} is not a condition: {CONDITION_HELP}", quote(text)),
        });
    };
    let value = &rest[operator.len()..];
    let value_column = column + key.chars().count() + operator.len();
    let error = |message: String| ParseError {
        column: value_column,
        message,
    };
    let needs = |wanted: &str| match operator == wanted {
        true => Ok(()),
        false => Err(ParseError {
            column: column + key.chars().count(),
            message: format!(
                "{key} takes {wanted:?}, as in {key}{wanted}VALUE",
                key = clip(key)
            ),
        }),
    };
    let non_empty = || match value.trim() {
        "" => Err(error(format!(
            "{}: needs a value after {operator:?}",
            clip(key)
        ))),
        v => Ok(v.to_owned()),
    };

    let key = key.to_lowercase();
    let key = key.as_str();
    Ok(match key {
        "tag" => {
            needs(":")?;
            Node::Tag(non_empty()?)
        }
        "consent" => {
            needs(":")?;
            Node::Consent(consent(value, value_column)?)
        }
        "postal" | "cp" => {
            needs(":")?;
            let prefix = non_empty()?;
            postal_prefix(&prefix).map_err(error)?;
            Node::PostalCodePrefix(prefix)
        }
        // Places are checked here too, where the error can name the column.
        "departement" | "département" | "dept" => {
            needs(":")?;
            let code = non_empty()?;
            territory::departement(&code).map_err(error)?;
            Node::Departement(code)
        }
        "commune" => {
            needs(":")?;
            let code = non_empty()?;
            territory::commune(&code).map_err(error)?;
            Node::Commune(code)
        }
        "region" | "région" => {
            needs(":")?;
            let code = non_empty()?;
            territory::region(&code).map_err(error)?;
            Node::Region(code)
        }
        "has" => {
            needs(":")?;
            match value.to_lowercase().as_str() {
                "email" | "e-mail" => Node::HasEmail(true),
                "phone" => Node::HasPhone(true),
                "commune" => Node::HasCommune(true),
                "contacted" => Node::HasContacted(true),
                other if other.starts_with("field.") => {
                    let key = &value["field.".len()..];
                    let definition = defined(fields, key).map_err(|message| ParseError {
                        column: value_column + "field.".len(),
                        message,
                    })?;
                    Node::HasField(definition.key().to_owned())
                }
                other => {
                    let other = clip(other);
                    return Err(error(format!(
                        "has:{other}: use has:email, has:phone, has:commune, has:contacted or \
                         has:field.KEY"
                    )));
                }
            }
        }
        "field" => {
            needs(":")?;
            Node::Field(field(value, value_column, fields)?)
        }
        "created" => Node::Created(range("created", operator, value).map_err(error)?),
        "contacted" => Node::Contacted(range("contacted", operator, value).map_err(error)?),
        "donations.total" => {
            needs(">=")?;
            Node::DonationTotal(amount(value).map_err(error)?)
        }
        "donations.last" => {
            Node::LastDonation(range("donations.last", operator, value).map_err(error)?)
        }
        "attended" => {
            needs(":")?;
            Node::Attended(non_empty()?)
        }
        "attended.count" => {
            needs(">=")?;
            match value.parse::<u32>() {
                Ok(count) if count >= 1 => Node::AttendedCountAtLeast(count),
                _ => {
                    return Err(error(format!(
                        "{} is not a count; write attended.count>=N with N a whole number \
                         from 1",
                        quote(value)
                    )));
                }
            }
        }
        other => {
            return Err(ParseError {
                column,
                message: format!(
                    "unknown field {}; use tag, consent, postal, departement, commune, \
                     region, created, contacted, field, donations.total, donations.last, \
                     attended, attended.count or has",
                    quote(other)
                ),
            });
        }
    })
}

/// `KEY=VALUE`, `KEY>=VALUE`, ... starting at `column`, typed by the
/// definition of KEY; the value is kept in its canonical text form.
fn field(text: &str, column: usize, fields: &Definitions) -> Result<FieldCondition, ParseError> {
    let key_length = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (key, rest) = text.split_at(key_length);
    let operator_column = column + key.chars().count();
    let operators = [
        (">=", FieldOp::GreaterOrEqual, FieldOperator::GreaterOrEqual),
        ("<=", FieldOp::LessOrEqual, FieldOperator::LessOrEqual),
        ("=", FieldOp::Equal, FieldOperator::Equal),
        (">", FieldOp::Greater, FieldOperator::Greater),
        ("<", FieldOp::Less, FieldOperator::Less),
    ];
    let Some((written, op, operator)) = operators.into_iter().find(|(w, ..)| rest.starts_with(w))
    else {
        return Err(ParseError {
            column: match key.is_empty() {
                true => column,
                false => operator_column,
            },
            message: "write field:KEY=VALUE, field:KEY>=VALUE or field:KEY<VALUE, \
                      as in field:membership_year>=2020"
                .into(),
        });
    };
    let value = &rest[written.len()..];
    let value_column = operator_column + written.len();
    if value.is_empty() {
        return Err(ParseError {
            column: value_column,
            message: format!("field:{}{written}: needs a value", clip(key)),
        });
    }
    let test = field_test(fields, key, op, value).map_err(|(part, message)| ParseError {
        column: match part {
            FieldPart::Key => column,
            FieldPart::Operator => operator_column,
            FieldPart::Value => value_column,
        },
        message,
    })?;
    Ok(FieldCondition {
        key: test.key,
        operator: operator as i32,
        value: canonical_text(&test.value),
    })
}

/// `email=granted` or `email.newsletter=granted` (channel, purpose, state)
/// starting at `column`.
fn consent(value: &str, column: usize) -> Result<ConsentCondition, ParseError> {
    let error = |column: usize, message: String| ParseError { column, message };
    let Some((target, state)) = value.split_once('=') else {
        return Err(error(
            column,
            "write consent:CHANNEL=STATE, as in consent:email=granted".into(),
        ));
    };
    let (channel_text, purpose) = target.split_once('.').unwrap_or((target, ""));
    let channel = match channel_text.to_lowercase().as_str() {
        "email" | "e-mail" => ConsentChannel::Email,
        "sms" => ConsentChannel::Sms,
        "phone" => ConsentChannel::Phone,
        "post" => ConsentChannel::Post,
        other => {
            let message = format!(
                "unknown consent channel {}; use email, sms, phone or post",
                quote(other)
            );
            return Err(error(column, message));
        }
    };
    let purpose = purpose.to_lowercase();
    if crate::consent::purpose(&purpose).is_none() || target.ends_with('.') {
        return Err(error(
            column + channel_text.chars().count() + 1,
            format!(
                "unknown consent purpose {}; use {}, or write consent:{channel_text}=STATE \
                 for the channel's general consent",
                quote(&purpose),
                crate::consent::PURPOSES[1..].join(", ")
            ),
        ));
    }
    let state_column = column + target.chars().count() + 1;
    let state = match state.to_lowercase().as_str() {
        "granted" => ConsentState::Granted,
        "withdrawn" => ConsentState::Withdrawn,
        "none" => ConsentState::None,
        "pending" => ConsentState::Pending,
        other => {
            let message = format!(
                "unknown consent state {}; use granted, withdrawn, pending or none",
                quote(other)
            );
            return Err(error(state_column, message));
        }
    };
    Ok(ConsentCondition {
        channel: channel as i32,
        purpose,
        state: state as i32,
    })
}

/// `NAME>=DATE`, `NAME<DATE` or `NAME:START..END` (either side may be empty),
/// for the dated conditions (`created`, `contacted`, `donations.last`).
fn range(name: &str, operator: &str, value: &str) -> Result<TimeRange, String> {
    let (start, end) = match operator {
        ">=" => (Some(instant(value)?), None),
        "<" => (None, Some(instant(value)?)),
        ":" => {
            let Some((start, end)) = value.split_once("..") else {
                return Err(format!(
                    "write {name}:START..END, {name}>=DATE or {name}<DATE"
                ));
            };
            let bound = |v: &str| match v {
                "" => Ok(None),
                v => instant(v).map(Some),
            };
            (bound(start)?, bound(end)?)
        }
        _ => {
            return Err(format!(
                "{name} takes >= (from, included) or < (before, excluded), not {operator:?}"
            ));
        }
    };
    if start.is_none() && end.is_none() {
        return Err("give at least one date".into());
    }
    if let (Some(start), Some(end)) = (start, end)
        && (start.seconds, start.nanos) >= (end.seconds, end.nanos)
    {
        return Err(format!(
            "the range ends before it starts; write {name}:START..END with \
             START first (END is excluded)"
        ));
    }
    Ok(TimeRange { start, end })
}

/// `50`, `12,50` or `12.5` (EUR), or with a currency code: `50USD`.
fn amount(value: &str) -> Result<DonationTotal, String> {
    let wrong = || {
        format!(
            "{} is not an amount; write donations.total>=50, >=12,50 or >=50USD",
            quote(value)
        )
    };
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    let (number, code) = value.split_at(split);
    let currency = match code {
        "" => "EUR".to_owned(),
        code => super::expr::currency(code)?,
    };
    let (units, cents) = match number.split_once([',', '.']) {
        Some((units, cents)) if (1..=2).contains(&cents.len()) => (units, cents),
        Some(_) => return Err(wrong()),
        None => (number, "0"),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || !digits(cents) || units.len() > 12 {
        return Err(wrong());
    }
    let cents = cents.parse::<i64>().map_err(|_| wrong())? * if cents.len() == 1 { 10 } else { 1 };
    let min_cents = units.parse::<i64>().map_err(|_| wrong())? * 100 + cents;
    if min_cents < 1 {
        return Err(
            "give a total of 1 cent or more; NOT of the condition selects those who \
                    gave less"
                .into(),
        );
    }
    Ok(DonationTotal {
        min_cents,
        currency,
    })
}

/// A day (`2024-09-01`, `01/09/2024`), from midnight in France as the
/// import reads a date alone, or an RFC 3339 instant.
fn instant(value: &str) -> Result<Timestamp, String> {
    let time = match date::calendar_date(value) {
        Ok((day, _)) => Some(date::paris_to_utc(day.and_time(NaiveTime::MIN))),
        Err(_) => DateTime::parse_from_rfc3339(value)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
    };
    let time = time.ok_or_else(|| {
        format!(
            "{} is not a date; write 2024-09-01, 01/09/2024 or 2024-09-01T18:30:00+02:00",
            quote(value)
        )
    })?;
    Ok(Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str) -> SegmentExpr {
        SegmentExpr {
            node: Some(Node::Tag(name.into())),
        }
    }

    fn error(query: &str) -> ParseError {
        parse(query).unwrap_err()
    }

    #[test]
    fn the_issue_example_parses_into_the_tree_it_reads_as() {
        let tree = parse(
            "tag:adhérent AND (departement:75 OR departement:93) \
             AND NOT consent:email=withdrawn AND has:email",
        )
        .unwrap();
        let Some(Node::And(list)) = tree.node else {
            panic!("{tree:?}")
        };
        assert_eq!(list.items.len(), 4);
        assert_eq!(list.items[0], tag("adhérent"));
        let Some(Node::Or(or)) = &list.items[1].node else {
            panic!("{:?}", list.items[1])
        };
        assert_eq!(or.items[1].node, Some(Node::Departement("93".into())));
        let Some(Node::Not(not)) = &list.items[2].node else {
            panic!("{:?}", list.items[2])
        };
        let Some(Node::Consent(consent)) = &not.node else {
            panic!("{not:?}")
        };
        assert_eq!(consent.state, ConsentState::Withdrawn as i32);
        assert_eq!(consent.channel, ConsentChannel::Email as i32);
        assert_eq!(list.items[3].node, Some(Node::HasEmail(true)));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let tree = parse("tag:a OR tag:b AND tag:c").unwrap();
        let Some(Node::Or(or)) = tree.node else {
            panic!("{tree:?}")
        };
        assert_eq!(or.items[0], tag("a"));
        assert!(matches!(or.items[1].node, Some(Node::And(_))));
    }

    #[test]
    fn keywords_ignore_case_and_quoted_values_keep_spaces_and_keywords() {
        let tree = parse(r#"tag:"comité local" or not tag:"AND""#).unwrap();
        let Some(Node::Or(or)) = tree.node else {
            panic!("{tree:?}")
        };
        assert_eq!(or.items[0], tag("comité local"));
        assert_eq!(or.items[1].node, Some(Node::Not(Box::new(tag("AND")))));
    }

    #[test]
    fn every_leaf_has_a_text_form() {
        let cases = [
            ("postal:69", Node::PostalCodePrefix("69".into())),
            ("département:2A", Node::Departement("2A".into())),
            ("commune:69123", Node::Commune("69123".into())),
            ("region:84", Node::Region("84".into())),
            ("has:phone", Node::HasPhone(true)),
            ("has:commune", Node::HasCommune(true)),
            ("has:email", Node::HasEmail(true)),
        ];
        for (query, node) in cases {
            assert_eq!(parse(query).unwrap().node, Some(node), "{query}");
        }
        let Some(Node::Created(range)) = parse("created:2024-01-01..2024-02-01T00:00:00Z")
            .unwrap()
            .node
        else {
            panic!()
        };
        // A day starts at midnight in France (23:00 UTC the day before in
        // winter); an instant is taken as written.
        assert_eq!(range.start.unwrap().seconds, 1_704_063_600);
        assert_eq!(range.end.unwrap().seconds, 1_706_745_600);
        let Some(Node::Created(range)) = parse("created<2024-01-01").unwrap().node else {
            panic!()
        };
        assert_eq!(
            (range.start, range.end.map(|t| t.seconds)),
            (None, Some(1_704_063_600))
        );
        let Some(Node::Created(range)) = parse("created>=2024-01-01").unwrap().node else {
            panic!()
        };
        assert_eq!(
            (range.start.map(|t| t.seconds), range.end),
            (Some(1_704_063_600), None)
        );
        let Some(Node::Created(range)) = parse("created>=01/09/2024").unwrap().node else {
            panic!()
        };
        let summer = DateTime::parse_from_rfc3339("2024-08-31T22:00:00Z").unwrap();
        assert_eq!(range.start.map(|t| t.seconds), Some(summer.timestamp()));
    }

    #[test]
    fn a_consent_names_its_channel_and_purpose_and_an_unknown_purpose_its_column() {
        let error = error("consent:email.petitions=none");
        assert_eq!(error.column, 15);
        assert!(error.message.contains("\"petitions\""), "{error}");
        assert!(error.message.contains("newsletter"), "{error}");
        let Some(Node::Consent(consent)) = parse("consent:SMS.Events=pending").unwrap().node else {
            panic!()
        };
        assert_eq!(consent.channel, ConsentChannel::Sms as i32);
        assert_eq!(consent.purpose, "events");
        assert_eq!(consent.state, ConsentState::Pending as i32);
        let Some(Node::Consent(consent)) = parse("consent:email=none").unwrap().node else {
            panic!()
        };
        assert_eq!(
            (consent.purpose.as_str(), consent.state),
            ("", ConsentState::None as i32)
        );
    }

    #[test]
    fn errors_name_the_column_of_the_mistake() {
        assert_eq!(error("tag:a AND tga:b").column, 11);
        assert!(
            error("tag:a AND tga:b")
                .message
                .contains("unknown field \"tga\"")
        );
        assert_eq!(error("tag:a AND").column, 10);
        assert_eq!(error("(tag:a OR tag:b").column, 1);
        assert_eq!(error("tag:a tag:b").column, 7);
        assert_eq!(error("tag:a AND )").column, 11);
        assert_eq!(error("consent:email=yes").column, 15);
        assert!(error("consent:email=yes").message.contains("granted"));
        assert_eq!(error("consent:fax=granted").column, 9);
        assert_eq!(error("created>2024-01-01").column, 9);
        assert_eq!(error("created>=2024-13-01").column, 10);
        assert_eq!(error("has:fax").column, 5);
        assert_eq!(error("tag:\"open").column, 5);
        assert_eq!(error("tag:").column, 5);
        assert_eq!(error("departement=75").column, 12);
        assert_eq!(error("").column, 1);
        assert_eq!(error("OR tag:a").column, 1);
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_where_it_goes_too_deep() {
        let within = format!("{}tag:a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&within).is_ok());
        let deeper = format!("{}tag:a", "NOT ".repeat(MAX_DEPTH + 1));
        let error = error(&deeper);
        assert_eq!(error.column, 4 * MAX_DEPTH + 1, "{error}");
        assert!(error.message.contains("nested deeper"), "{error}");
    }

    #[test]
    fn an_overlong_query_is_refused_before_it_is_read() {
        let query = "tag:a OR ".repeat(MAX_LENGTH / 9 + 1);
        assert!(error(&query).message.contains("longer than"));
    }
}
