//! The checked condition tree: every leaf value valid, the tree within its
//! limits, errors naming the node (`filter.expr.and[2].not: ...`).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1::segment_expr::Node;
use muster_proto::contacts::v1::{
    ConsentChannel, ConsentState, FieldCondition, FieldOperator, SegmentExpr, TimeRange,
};
use muster_runtime::ApiError;

use crate::consent::{Channel, LegalBasis, PURPOSES};
use crate::domain::custom_field::Definitions;
use crate::domain::territory;

/// The deepest nesting of and/or/not a tree may have.
pub const MAX_DEPTH: usize = 12;

/// The most conditions a tree may have (leaves and empty `and`/`or`, counted
/// together; with the depth limit this also bounds the combinations).
pub const MAX_CONDITIONS: usize = 256;

/// The most characters of a value an error message quotes.
pub const QUOTE_LENGTH: usize = 40;

/// `value` cut to its first [`QUOTE_LENGTH`] characters and "…" when longer,
/// so that an error about a huge value stays small.
pub fn clip(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(QUOTE_LENGTH) {
        Some((end, _)) => Cow::Owned(format!("{}…", &value[..end])),
        None => Cow::Borrowed(value),
    }
}

/// `value` quoted for an error message, cut as by [`clip`].
pub fn quote(value: &str) -> String {
    format!("{:?}", clip(value))
}

/// The error for a value holding U+0000, which PostgreSQL cannot store in text.
pub const NUL_MESSAGE: &str =
    "contains a NUL character (U+0000), which cannot be stored; remove it";

/// A condition over people.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Leaf(Leaf),
}

/// A test of one property of a person.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    /// Carries at least one of these tags.
    TagsAny(Vec<String>),
    /// Carries all of these tags.
    TagsAll(Vec<String>),
    /// E-mail consent in this state: `none`, `granted` or `withdrawn`.
    EmailConsent(&'static str),
    /// Consent on another channel or for a purpose, read from the ledger's
    /// current states, or general e-mail consent once the policy forbids a basis.
    Consent(ConsentLeaf),
    /// Postal code starting with one of these.
    PostalPrefix(Vec<PostalPrefix>),
    Departement(Vec<String>),
    Commune(Vec<String>),
    Region(Vec<String>),
    /// Created in `[start, end)`.
    Created {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
    HasEmail(bool),
    HasPhone(bool),
    /// Placed in a commune (true) or in none (false).
    HasCommune(bool),
    /// A custom field compared with a value of its type.
    Field(FieldTest),
    /// Holds a value for the custom field of this key.
    HasField(String),
    /// Last sent a message in `[start, end)`.
    Contacted {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
    /// Was ever sent a message (true) or never (false).
    HasContacted(bool),
    /// Gave at least `min_cents` in all in `currency` (ISO 4217).
    DonationTotal {
        currency: String,
        min_cents: i64,
    },
    /// Last gave (in any currency) in `[start, end)`.
    LastDonation {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
    /// Attended the event of this id.
    Attended(String),
    /// Attended at least this many events.
    AttendedCount(u32),
}

/// A custom field compared with a value of its type.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldTest {
    pub key: String,
    pub operator: FieldOp,
    /// Canonical JSON, as the field's values are stored.
    pub value: serde_json::Value,
    /// The `jsonb_typeof` of the field's values, so that an ordering never
    /// compares a number with a string.
    pub json_type: &'static str,
}

/// How a custom field is compared with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    Equal,
    GreaterOrEqual,
    Greater,
    Less,
    LessOrEqual,
}

impl FieldOp {
    /// The SQL operator, between two jsonb values.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Equal => " = ",
            Self::GreaterOrEqual => " >= ",
            Self::Greater => " > ",
            Self::Less => " < ",
            Self::LessOrEqual => " <= ",
        }
    }
}

/// Which part of a custom field condition is wrong, for the text form to
/// point at its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldPart {
    Key,
    Operator,
    Value,
}

/// The typed test `key operator raw` by the organization's definitions, or
/// the wrong part and what to write instead.
pub fn field_test(
    fields: &Definitions,
    key: &str,
    operator: FieldOp,
    raw: &str,
) -> Result<FieldTest, (FieldPart, String)> {
    let definition = defined(fields, key).map_err(|m| (FieldPart::Key, m))?;
    let kind = definition.kind();
    if operator != FieldOp::Equal && !kind.is_ordered() {
        return Err((
            FieldPart::Operator,
            format!(
                "{key} is a {} field: compare it with = only (>=, >, <, <= take number and \
                 date fields)",
                kind.as_str()
            ),
        ));
    }
    let value = definition.parse_value(raw).map_err(|error| {
        let message = format!("{key} is a {} field: {}", kind.as_str(), error.reason);
        (FieldPart::Value, message)
    })?;
    Ok(FieldTest {
        key: definition.key().to_owned(),
        operator,
        value,
        json_type: kind.json_type(),
    })
}

/// An ISO 4217 currency code, upper-cased.
pub fn currency(code: &str) -> Result<String, String> {
    let code = code.trim().to_ascii_uppercase();
    match code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        true => Ok(code),
        false => Err(format!(
            "{} is not a currency code; write an ISO 4217 code such as EUR",
            quote(&code)
        )),
    }
}

/// The definition of `key`, or an error listing the keys defined.
pub fn defined<'d>(
    fields: &'d Definitions,
    key: &str,
) -> Result<&'d crate::domain::custom_field::Definition, String> {
    fields.get(key).ok_or_else(|| {
        format!(
            "unknown custom field {}; the fields are: {}",
            quote(key),
            fields.keys()
        )
    })
}

/// The consent of a channel and purpose in a state.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentLeaf {
    pub channel: Channel,
    /// One of [`crate::consent::PURPOSES`].
    pub purpose: &'static str,
    /// `none`, `granted`, `withdrawn` or `pending`.
    pub state: &'static str,
    /// Legal bases whose grants do not count: those the organization's policy
    /// forbids on the channel when the filter is used (see [`Expr::apply_policy`]).
    pub forbidden: Vec<&'static str>,
}

/// A postal code prefix as the byte range `[start, end)` of the codes it begins.
#[derive(Debug, Clone, PartialEq)]
pub struct PostalPrefix {
    pub start: String,
    pub end: String,
}

/// The range of postal codes starting with `prefix` (ASCII letters and digits).
pub fn postal_prefix(prefix: &str) -> Result<PostalPrefix, String> {
    let prefix = prefix.trim().to_owned();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{} is not a postal code prefix (letters and digits only)",
            quote(&prefix)
        ));
    }
    let mut end = prefix.clone().into_bytes();
    // ASCII letters and digits are below 0x7F: the last byte has a successor.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    Ok(PostalPrefix {
        end: String::from_utf8(end).unwrap_or_default(),
        start: prefix,
    })
}

/// The `people.email_consent` value of a known consent state.
pub fn consent_value(state: ConsentState) -> &'static str {
    match state {
        ConsentState::Granted => "granted",
        ConsentState::Withdrawn => "withdrawn",
        ConsentState::Pending => "pending",
        ConsentState::None | ConsentState::Unspecified => "none",
    }
}

impl Expr {
    /// Checks a tree from the API, typing custom field conditions by
    /// `fields`; `path` names its root in errors.
    pub fn check(tree: &SegmentExpr, path: &str, fields: &Definitions) -> Result<Self, ApiError> {
        let mut conditions = 0;
        let checked = check(tree, path, 0, &mut conditions, fields)?;
        Ok(checked.simplify())
    }

    /// Makes grants whose legal basis `forbidden` lists for their channel
    /// stop counting in the consent leaves that ask for `granted`.
    pub fn apply_policy(&mut self, forbidden: &[(Channel, LegalBasis)]) {
        let bases = |channel: Channel| -> Vec<&'static str> {
            forbidden
                .iter()
                .filter(|(c, _)| *c == channel)
                .map(|(_, basis)| basis.as_str())
                .collect()
        };
        match self {
            Self::And(items) | Self::Or(items) => items
                .iter_mut()
                .for_each(|item| item.apply_policy(forbidden)),
            Self::Not(inner) => inner.apply_policy(forbidden),
            Self::Leaf(Leaf::EmailConsent("granted")) => {
                let forbidden = bases(Channel::Email);
                if !forbidden.is_empty() {
                    *self = Self::Leaf(Leaf::Consent(ConsentLeaf {
                        channel: Channel::Email,
                        purpose: "",
                        state: "granted",
                        forbidden,
                    }));
                }
            }
            Self::Leaf(Leaf::Consent(leaf)) if leaf.state == "granted" => {
                leaf.forbidden = bases(leaf.channel);
            }
            Self::Leaf(_) => {}
        }
    }

    /// How many values the condition holds: each list entry and each other leaf count one.
    pub fn values(&self) -> usize {
        match self {
            Self::And(items) | Self::Or(items) => items.iter().map(Self::values).sum(),
            Self::Not(inner) => inner.values(),
            Self::Leaf(
                Leaf::TagsAny(values)
                | Leaf::TagsAll(values)
                | Leaf::Departement(values)
                | Leaf::Commune(values)
                | Leaf::Region(values),
            ) => values.len(),
            Self::Leaf(Leaf::PostalPrefix(prefixes)) => prefixes.len(),
            Self::Leaf(_) => 1,
        }
    }

    /// Whether the condition reads the donations or attendance other
    /// services announced (a set of people apart from `people`).
    pub fn reads_projections(&self) -> bool {
        match self {
            Self::And(items) | Self::Or(items) => items.iter().any(Self::reads_projections),
            Self::Not(inner) => inner.reads_projections(),
            Self::Leaf(leaf) => matches!(
                leaf,
                Leaf::DonationTotal { .. }
                    | Leaf::LastDonation { .. }
                    | Leaf::Attended(_)
                    | Leaf::AttendedCount(_)
            ),
        }
    }

    /// Whether the condition can be NULL in SQL (it tests a column that may be missing).
    pub fn may_be_null(&self) -> bool {
        match self {
            Self::And(items) | Self::Or(items) => items.iter().any(Self::may_be_null),
            // A negation is written `IS NOT TRUE` when its operand may be NULL.
            Self::Not(_) => false,
            Self::Leaf(Leaf::Field(test)) => test.operator != FieldOp::Equal,
            Self::Leaf(Leaf::Contacted { .. }) => true,
            Self::Leaf(leaf) => matches!(
                leaf,
                Leaf::PostalPrefix(_) | Leaf::Departement(_) | Leaf::Commune(_) | Leaf::Region(_)
            ),
        }
    }

    /// The same condition with nested and/or flattened, one-item lists
    /// unwrapped and sibling leaves of one kind under an `or` merged into one
    /// (`departement = ANY(...)` rather than one test per value).
    fn simplify(self) -> Self {
        match self {
            Self::Not(inner) => Self::Not(Box::new(inner.simplify())),
            Self::And(items) => {
                let mut flat = Vec::new();
                for item in items.into_iter().map(Self::simplify) {
                    match item {
                        Self::And(inner) => flat.extend(inner),
                        other => flat.push(other),
                    }
                }
                match flat.len() {
                    1 => flat.remove(0),
                    _ => Self::And(flat),
                }
            }
            Self::Or(items) => {
                let mut flat: Vec<Expr> = Vec::new();
                for item in items.into_iter().map(Self::simplify) {
                    let inner = match item {
                        Self::Or(inner) => inner,
                        other => vec![other],
                    };
                    for item in inner {
                        if let Self::Leaf(leaf) = item {
                            match flat.iter_mut().find_map(|known| merge(known, &leaf)) {
                                Some(()) => {}
                                None => flat.push(Self::Leaf(leaf)),
                            }
                        } else {
                            flat.push(item);
                        }
                    }
                }
                match flat.len() {
                    1 => flat.remove(0),
                    _ => Self::Or(flat),
                }
            }
            leaf => leaf,
        }
    }
}

/// Adds `leaf`'s values to `known` when both test the same column for any of a list.
fn merge(known: &mut Expr, leaf: &Leaf) -> Option<()> {
    let Expr::Leaf(known) = known else {
        return None;
    };
    match (known, leaf) {
        (Leaf::TagsAny(a), Leaf::TagsAny(b))
        | (Leaf::Departement(a), Leaf::Departement(b))
        | (Leaf::Commune(a), Leaf::Commune(b))
        | (Leaf::Region(a), Leaf::Region(b)) => {
            a.extend(b.iter().cloned());
            Some(())
        }
        (Leaf::PostalPrefix(a), Leaf::PostalPrefix(b)) => {
            a.extend(b.iter().cloned());
            Some(())
        }
        _ => None,
    }
}

fn check(
    tree: &SegmentExpr,
    path: &str,
    depth: usize,
    conditions: &mut usize,
    fields: &Definitions,
) -> Result<Expr, ApiError> {
    let is_condition = match &tree.node {
        Some(Node::And(list) | Node::Or(list)) => list.items.is_empty(),
        Some(Node::Not(_)) => false,
        _ => true,
    };
    if is_condition {
        *conditions += 1;
        if *conditions > MAX_CONDITIONS {
            return Err(ApiError::invalid(
                path,
                format!(
                    "the filter has more than {MAX_CONDITIONS} conditions; \
                     split it or use lists"
                ),
            ));
        }
    }
    let invalid = |message: String| ApiError::invalid(path, message);
    let text = |value: &str, what: &str| match value.trim() {
        "" => Err(invalid(format!(
            "empty {what}; give one or leave the condition out"
        ))),
        value if value.contains('\0') => Err(invalid(format!("the {what} {NUL_MESSAGE}"))),
        value => Ok(value.to_owned()),
    };
    let Some(node) = &tree.node else {
        return Err(invalid(
            "an empty condition; set one of and, or, not, tag, consent, postal_code_prefix, \
             departement, commune, region, created, has_email, has_phone, has_commune, field, \
             has_field, contacted, has_contacted, donation_total, last_donation, attended, \
             attended_count_at_least"
                .into(),
        ));
    };
    let nested = |kind: &str| {
        if depth + 1 > MAX_DEPTH {
            return Err(ApiError::invalid(
                format!("{path}.{kind}"),
                format!("nested deeper than {MAX_DEPTH} levels; flatten the conditions"),
            ));
        }
        Ok(())
    };
    Ok(match node {
        Node::And(list) | Node::Or(list) => {
            let kind = if matches!(node, Node::And(_)) {
                "and"
            } else {
                "or"
            };
            nested(kind)?;
            let mut items = Vec::with_capacity(list.items.len());
            for (n, item) in list.items.iter().enumerate() {
                items.push(check(
                    item,
                    &format!("{path}.{kind}[{n}]"),
                    depth + 1,
                    conditions,
                    fields,
                )?);
            }
            match kind {
                "and" => Expr::And(items),
                _ => Expr::Or(items),
            }
        }
        Node::Not(inner) => {
            nested("not")?;
            Expr::Not(Box::new(check(
                inner,
                &format!("{path}.not"),
                depth + 1,
                conditions,
                fields,
            )?))
        }
        Node::Tag(tag) => Expr::Leaf(Leaf::TagsAny(vec![text(tag, "tag")?])),
        Node::Consent(consent) => {
            let path = format!("{path}.consent");
            let channel = match ConsentChannel::try_from(consent.channel) {
                Ok(ConsentChannel::Email) => Channel::Email,
                Ok(ConsentChannel::Sms) => Channel::Sms,
                Ok(ConsentChannel::Phone) => Channel::Phone,
                Ok(ConsentChannel::Post) => Channel::Post,
                _ => {
                    return Err(ApiError::invalid(
                        path,
                        "choose a channel: email, sms, phone or post",
                    ));
                }
            };
            let Some(purpose) = crate::consent::purpose(&consent.purpose) else {
                return Err(ApiError::invalid(
                    path,
                    format!(
                        "unknown purpose {}; use {} or leave it empty for the channel's \
                         general consent",
                        quote(&consent.purpose),
                        PURPOSES[1..].join(", ")
                    ),
                ));
            };
            let state = match ConsentState::try_from(consent.state) {
                Ok(ConsentState::Unspecified) | Err(_) => {
                    return Err(ApiError::invalid(
                        path,
                        "choose a state: none, granted, withdrawn or pending",
                    ));
                }
                Ok(state) => consent_value(state),
            };
            match (channel, purpose) {
                (Channel::Email, "") => Expr::Leaf(Leaf::EmailConsent(state)),
                _ => Expr::Leaf(Leaf::Consent(ConsentLeaf {
                    channel,
                    purpose,
                    state,
                    forbidden: Vec::new(),
                })),
            }
        }
        Node::PostalCodePrefix(prefix) => Expr::Leaf(Leaf::PostalPrefix(vec![
            postal_prefix(prefix).map_err(invalid)?,
        ])),
        Node::Departement(code) => Expr::Leaf(Leaf::Departement(vec![
            territory::departement(&text(code, "département")?).map_err(invalid)?,
        ])),
        Node::Commune(code) => Expr::Leaf(Leaf::Commune(vec![
            territory::commune(&text(code, "commune")?).map_err(invalid)?,
        ])),
        Node::Region(code) => Expr::Leaf(Leaf::Region(vec![
            territory::region(&text(code, "région")?).map_err(invalid)?,
        ])),
        Node::Created(range) => created(range).map_err(invalid)?,
        Node::HasEmail(has) => Expr::Leaf(Leaf::HasEmail(*has)),
        Node::HasPhone(has) => Expr::Leaf(Leaf::HasPhone(*has)),
        Node::HasCommune(has) => Expr::Leaf(Leaf::HasCommune(*has)),
        Node::Field(condition) => {
            Expr::Leaf(Leaf::Field(field_condition(condition, fields).map_err(
                |(part, message)| ApiError::invalid(format!("{path}.field.{part}"), message),
            )?))
        }
        Node::Contacted(range) => {
            let (start, end) = bounds(range).map_err(invalid)?;
            Expr::Leaf(Leaf::Contacted { start, end })
        }
        Node::HasContacted(has) => Expr::Leaf(Leaf::HasContacted(*has)),
        Node::DonationTotal(total) => {
            let currency = match total.currency.trim() {
                "" => "EUR".to_owned(),
                code => currency(code)
                    .map_err(|m| ApiError::invalid(format!("{path}.donation_total.currency"), m))?,
            };
            if total.min_cents < 1 {
                return Err(ApiError::invalid(
                    format!("{path}.donation_total.min_cents"),
                    "give a total of 1 cent or more; NOT of the condition selects those who \
                     gave less",
                ));
            }
            Expr::Leaf(Leaf::DonationTotal {
                currency,
                min_cents: total.min_cents,
            })
        }
        Node::LastDonation(range) => {
            let (start, end) = bounds(range).map_err(invalid)?;
            Expr::Leaf(Leaf::LastDonation { start, end })
        }
        Node::Attended(event) => Expr::Leaf(Leaf::Attended(text(event, "event id")?)),
        Node::AttendedCountAtLeast(0) => {
            return Err(invalid(
                "attended_count_at_least takes 1 or more; everyone attended 0 events or more"
                    .into(),
            ));
        }
        Node::AttendedCountAtLeast(count) => Expr::Leaf(Leaf::AttendedCount(*count)),
        Node::HasField(key) => {
            let key = text(key, "custom field key")?;
            let definition = defined(fields, &key)
                .map_err(|m| ApiError::invalid(format!("{path}.has_field"), m))?;
            Expr::Leaf(Leaf::HasField(definition.key().to_owned()))
        }
    })
}

/// The leaf of a tree's custom field condition; errors name the part
/// (`key`, `operator`, `value`).
fn field_condition(
    condition: &FieldCondition,
    fields: &Definitions,
) -> Result<FieldTest, (&'static str, String)> {
    let operator = match FieldOperator::try_from(condition.operator) {
        Ok(FieldOperator::Equal) => FieldOp::Equal,
        Ok(FieldOperator::GreaterOrEqual) => FieldOp::GreaterOrEqual,
        Ok(FieldOperator::Greater) => FieldOp::Greater,
        Ok(FieldOperator::Less) => FieldOp::Less,
        Ok(FieldOperator::LessOrEqual) => FieldOp::LessOrEqual,
        Ok(FieldOperator::Unspecified) | Err(_) => {
            return Err((
                "operator",
                "choose an operator: equal, greater_or_equal, greater, less or less_or_equal"
                    .into(),
            ));
        }
    };
    field_test(fields, condition.key.trim(), operator, &condition.value).map_err(
        |(part, message)| {
            let part = match part {
                FieldPart::Key => "key",
                FieldPart::Operator => "operator",
                FieldPart::Value => "value",
            };
            (part, message)
        },
    )
}

fn created(range: &TimeRange) -> Result<Expr, String> {
    let (start, end) = bounds(range)?;
    Ok(Expr::Leaf(Leaf::Created { start, end }))
}

/// A range's start and end, either open.
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The instants of a range, checked: at least one bound, the start first.
fn bounds(range: &TimeRange) -> Result<Bounds, String> {
    let instant = |t: &Option<muster_proto::Timestamp>, bound: &str| match t {
        None => Ok(None),
        Some(t) => DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .map(Some)
            .ok_or_else(|| format!("the {bound} of the range is not a valid instant")),
    };
    let start = instant(&range.start, "start")?;
    let end = instant(&range.end, "end")?;
    match (start, end) {
        (None, None) => Err("a range without start or end; set at least one".into()),
        (Some(s), Some(e)) if s >= e => Err(format!(
            "the range starts at {s} and ends before it ({e}); the end is exclusive"
        )),
        _ => Ok((start, end)),
    }
}
