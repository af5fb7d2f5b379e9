//! People, imports and segments.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as proto;
use serde::{Deserialize, Serialize};

use super::{instant, non_empty};

/// The file layouts an import understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportPreset {
    Unspecified,
    FrExcel,
    Nationbuilder,
    MailchimpSubscribed,
    MailchimpUnsubscribed,
    Custom,
}

impl ImportPreset {
    /// The preset named `name` in the API (`fr_excel`, ...); `unspecified` is not one.
    pub fn parse(name: &str) -> Option<Self> {
        let preset = match name {
            "fr_excel" => Self::FrExcel,
            "nationbuilder" => Self::Nationbuilder,
            "mailchimp_subscribed" => Self::MailchimpSubscribed,
            "mailchimp_unsubscribed" => Self::MailchimpUnsubscribed,
            "custom" => Self::Custom,
            _ => return None,
        };
        Some(preset)
    }

    fn from_proto(value: i32) -> Self {
        use proto::ImportPreset as P;
        match P::try_from(value).unwrap_or_default() {
            P::Unspecified => Self::Unspecified,
            P::FrExcel => Self::FrExcel,
            P::Nationbuilder => Self::Nationbuilder,
            P::MailchimpSubscribed => Self::MailchimpSubscribed,
            P::MailchimpUnsubscribed => Self::MailchimpUnsubscribed,
            P::Custom => Self::Custom,
        }
    }

    pub fn to_proto(self) -> proto::ImportPreset {
        use proto::ImportPreset as P;
        match self {
            Self::Unspecified => P::Unspecified,
            Self::FrExcel => P::FrExcel,
            Self::Nationbuilder => P::Nationbuilder,
            Self::MailchimpSubscribed => P::MailchimpSubscribed,
            Self::MailchimpUnsubscribed => P::MailchimpUnsubscribed,
            Self::Custom => P::Custom,
        }
    }
}

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    Unspecified,
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl ImportState {
    fn from_proto(value: i32) -> Self {
        use proto::ImportState as S;
        match S::try_from(value).unwrap_or_default() {
            S::Unspecified => Self::Unspecified,
            S::Queued => Self::Queued,
            S::Running => Self::Running,
            S::Succeeded => Self::Succeeded,
            S::Failed => Self::Failed,
        }
    }
}

/// What an import did with the rows of its file.
#[derive(Debug, Default, Serialize)]
pub struct ImportCounts {
    pub rows_read: u64,
    pub rows_empty: u64,
    pub created: u64,
    pub merged: u64,
    pub rejected: u64,
    pub warnings: u64,
    pub consent_granted: u64,
    pub suppressed: u64,
    pub duplicates_listed: u64,
    pub duplicates_merged: u64,
}

impl From<proto::ImportCounts> for ImportCounts {
    fn from(counts: proto::ImportCounts) -> Self {
        Self {
            rows_read: counts.rows_read,
            rows_empty: counts.rows_empty,
            created: counts.created,
            merged: counts.merged,
            rejected: counts.rejected,
            warnings: counts.warnings,
            consent_granted: counts.consent_granted,
            suppressed: counts.suppressed,
            duplicates_listed: counts.duplicates_listed,
            duplicates_merged: counts.duplicates_merged,
        }
    }
}

/// An uploaded file and its progress.
#[derive(Debug, Serialize)]
pub struct ImportJob {
    pub id: String,
    pub state: ImportState,
    pub file_name: String,
    pub preset: ImportPreset,
    pub size_bytes: u64,
    pub bytes_read: u64,
    pub counts: ImportCounts,
    pub encoding: Option<String>,
    pub delimiter: Option<String>,
    pub error: Option<String>,
    pub create_time: Option<DateTime<Utc>>,
    pub finish_time: Option<DateTime<Utc>>,
}

impl From<proto::ImportJob> for ImportJob {
    fn from(job: proto::ImportJob) -> Self {
        Self {
            id: job.id,
            state: ImportState::from_proto(job.state),
            file_name: job.file_name,
            preset: ImportPreset::from_proto(job.preset),
            size_bytes: job.size_bytes,
            bytes_read: job.bytes_read,
            counts: job.counts.map(ImportCounts::from).unwrap_or_default(),
            encoding: non_empty(job.encoding),
            delimiter: non_empty(job.delimiter),
            error: non_empty(job.error),
            create_time: instant(job.create_time),
            finish_time: instant(job.finish_time),
        }
    }
}

/// How bad an import issue is.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueSeverity {
    Unspecified,
    /// The row was kept without the value.
    Warning,
    /// The row was not imported.
    Rejected,
}

impl IssueSeverity {
    fn from_proto(value: i32) -> Self {
        use proto::IssueSeverity as S;
        match S::try_from(value).unwrap_or_default() {
            S::Unspecified => Self::Unspecified,
            S::Warning => Self::Warning,
            S::Rejected => Self::Rejected,
        }
    }
}

/// A value of a file line that could not be imported as given.
#[derive(Debug, Serialize)]
pub struct ImportIssue {
    pub line: u64,
    pub field: String,
    pub value: String,
    pub reason: String,
    pub severity: IssueSeverity,
}

impl From<proto::ImportIssue> for ImportIssue {
    fn from(issue: proto::ImportIssue) -> Self {
        Self {
            line: issue.line,
            field: issue.field,
            value: issue.value,
            reason: issue.reason,
            severity: IssueSeverity::from_proto(issue.severity),
        }
    }
}

/// The issues of one page of a listing.
#[derive(Debug, Serialize)]
pub struct Issues {
    pub issues: Vec<ImportIssue>,
}

/// The imports of one page of a listing.
#[derive(Debug, Serialize)]
pub struct Imports {
    pub imports: Vec<ImportJob>,
}

/// Whether a person may be reached on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// Only ever written (a state the proto leaves unset), never read.
    #[serde(skip_deserializing)]
    Unspecified,
    None,
    Granted,
    Withdrawn,
    /// Waiting for the person to confirm (double opt-in): not a grant.
    Pending,
}

impl ConsentState {
    pub(crate) fn from_proto(value: i32) -> Self {
        use proto::ConsentState as C;
        match C::try_from(value).unwrap_or_default() {
            C::Unspecified => Self::Unspecified,
            C::None => Self::None,
            C::Granted => Self::Granted,
            C::Withdrawn => Self::Withdrawn,
            C::Pending => Self::Pending,
        }
    }

    pub(crate) fn to_proto(self) -> proto::ConsentState {
        use proto::ConsentState as C;
        match self {
            Self::Unspecified => C::Unspecified,
            Self::None => C::None,
            Self::Granted => C::Granted,
            Self::Withdrawn => C::Withdrawn,
            Self::Pending => C::Pending,
        }
    }
}

/// A consent statement and where it came from.
#[derive(Debug, Serialize)]
pub struct Consent {
    pub state: ConsentState,
    pub time: Option<DateTime<Utc>>,
    pub source: String,
    pub evidence: HashMap<String, String>,
}

impl From<proto::Consent> for Consent {
    fn from(consent: proto::Consent) -> Self {
        Self {
            state: ConsentState::from_proto(consent.state),
            time: instant(consent.time),
            source: consent.source,
            evidence: consent.evidence,
        }
    }
}

/// A postal address; `departement` is derived from the postal code.
#[derive(Debug, Serialize)]
pub struct PostalAddress {
    pub line1: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub departement: Option<String>,
    pub commune_insee: Option<String>,
    pub region: Option<String>,
}

impl From<proto::PostalAddress> for PostalAddress {
    fn from(address: proto::PostalAddress) -> Self {
        Self {
            line1: non_empty(address.line1),
            postal_code: non_empty(address.postal_code),
            city: non_empty(address.city),
            country: non_empty(address.country),
            departement: non_empty(address.departement),
            commune_insee: non_empty(address.commune_insee),
            region: non_empty(address.region),
        }
    }
}

/// A person in the organization's database.
#[derive(Debug, Serialize)]
pub struct Person {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<PostalAddress>,
    pub birth_date: Option<String>,
    pub tags: Vec<String>,
    pub email_consent: Option<Consent>,
    pub external_ids: HashMap<String, String>,
    pub create_time: Option<DateTime<Utc>>,
    pub update_time: Option<DateTime<Utc>>,
    /// IANA time zone of where the person lives.
    pub time_zone: Option<String>,
    /// Addresses beyond `email`, from merges; imports match them.
    pub other_emails: Vec<String>,
    /// Numbers beyond `phone`, E.164.
    pub other_phones: Vec<String>,
    /// Custom field values by key, in their canonical text form.
    pub custom_fields: HashMap<String, String>,
}

impl From<proto::Person> for Person {
    fn from(person: proto::Person) -> Self {
        Self {
            id: person.id,
            first_name: non_empty(person.first_name),
            last_name: non_empty(person.last_name),
            email: non_empty(person.email),
            phone: non_empty(person.phone),
            address: person.address.map(PostalAddress::from),
            birth_date: non_empty(person.birth_date),
            tags: person.tags,
            email_consent: person.email_consent.map(Consent::from),
            external_ids: person.external_ids,
            create_time: instant(person.create_time),
            update_time: instant(person.update_time),
            time_zone: non_empty(person.time_zone),
            other_emails: person.other_emails,
            other_phones: person.other_phones,
            custom_fields: person.custom_fields,
        }
    }
}

/// The people of one page of a listing.
#[derive(Debug, Serialize)]
pub struct People {
    pub people: Vec<Person>,
}

/// People matching every condition that is set; an empty filter matches everyone.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentFilter {
    pub tags_any: Vec<String>,
    pub tags_all: Vec<String>,
    pub tags_none: Vec<String>,
    /// `null` matches any state.
    pub email_consent: Option<ConsentState>,
    pub postal_code_prefixes: Vec<String>,
    pub departements: Vec<String>,
    /// Communes by INSEE code ("69123").
    pub communes: Vec<String>,
    /// Régions by code ("84").
    pub regions: Vec<String>,
    pub require_email: bool,
    /// A condition tree: `{"and": [{"tag": "adhérent"}, {"not": {"has_phone": true}}]}`.
    pub expr: Option<SegmentExpr>,
    /// The text form: `tag:adhérent AND (departement:75 OR departement:93)`.
    pub query: Option<String>,
    /// People of a saved segment.
    pub saved_segment_id: Option<String>,
}

/// A condition over people, as a JSON tree; the proto's `SegmentExpr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SegmentExpr {
    And(Vec<SegmentExpr>),
    Or(Vec<SegmentExpr>),
    Not(Box<SegmentExpr>),
    Tag(String),
    Consent(ConsentCondition),
    PostalCodePrefix(String),
    Departement(String),
    Commune(String),
    Region(String),
    Created(TimeRange),
    HasEmail(bool),
    HasPhone(bool),
    HasCommune(bool),
    /// `{"field": {"key": "membership_year", "operator": "greater_or_equal", "value": "2020"}}`.
    Field(FieldCondition),
    /// People holding a value for the custom field of this key.
    HasField(String),
    /// Last sent a message in the range.
    Contacted(TimeRange),
    HasContacted(bool),
    /// `{"donation_total": {"min_cents": 5000, "currency": "EUR"}}`.
    DonationTotal(DonationTotal),
    /// Last gave in the range.
    LastDonation(TimeRange),
    /// Attended the event of this id.
    Attended(String),
    AttendedCountAtLeast(u32),
}

/// Donations adding up to `min_cents` or more in `currency` (empty: EUR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DonationTotal {
    pub min_cents: i64,
    #[serde(default)]
    pub currency: String,
}

/// A custom field compared with a value, written as for a person's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldCondition {
    pub key: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// How a custom field is compared; the orderings take number and date fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldOperator {
    Equal,
    GreaterOrEqual,
    Greater,
    Less,
    LessOrEqual,
}

impl FieldOperator {
    fn to_proto(self) -> proto::FieldOperator {
        match self {
            Self::Equal => proto::FieldOperator::Equal,
            Self::GreaterOrEqual => proto::FieldOperator::GreaterOrEqual,
            Self::Greater => proto::FieldOperator::Greater,
            Self::Less => proto::FieldOperator::Less,
            Self::LessOrEqual => proto::FieldOperator::LessOrEqual,
        }
    }

    fn from_proto(value: i32) -> Option<Self> {
        Some(match proto::FieldOperator::try_from(value).ok()? {
            proto::FieldOperator::Equal => Self::Equal,
            proto::FieldOperator::GreaterOrEqual => Self::GreaterOrEqual,
            proto::FieldOperator::Greater => Self::Greater,
            proto::FieldOperator::Less => Self::Less,
            proto::FieldOperator::LessOrEqual => Self::LessOrEqual,
            proto::FieldOperator::Unspecified => return None,
        })
    }
}

/// The channels consent is recorded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentChannel {
    Unspecified,
    Email,
    Sms,
    Phone,
    Post,
}

/// A person's consent on `channel`, for `purpose` (empty: general), is `state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentCondition {
    pub channel: ConsentChannel,
    #[serde(default)]
    pub purpose: String,
    pub state: ConsentState,
}

/// `[start, end)`; either may be left out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeRange {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

fn timestamp(instant: Option<DateTime<Utc>>) -> Option<muster_proto::Timestamp> {
    instant.map(|t| muster_proto::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

impl From<SegmentExpr> for proto::SegmentExpr {
    fn from(expr: SegmentExpr) -> Self {
        use proto::segment_expr::Node;
        let list = |items: Vec<SegmentExpr>| proto::SegmentExprList {
            items: items.into_iter().map(Into::into).collect(),
        };
        let node = match expr {
            SegmentExpr::And(items) => Node::And(list(items)),
            SegmentExpr::Or(items) => Node::Or(list(items)),
            SegmentExpr::Not(inner) => Node::Not(Box::new((*inner).into())),
            SegmentExpr::Tag(tag) => Node::Tag(tag),
            SegmentExpr::Consent(c) => Node::Consent(proto::ConsentCondition {
                channel: match c.channel {
                    ConsentChannel::Unspecified => proto::ConsentChannel::Unspecified,
                    ConsentChannel::Email => proto::ConsentChannel::Email,
                    ConsentChannel::Sms => proto::ConsentChannel::Sms,
                    ConsentChannel::Phone => proto::ConsentChannel::Phone,
                    ConsentChannel::Post => proto::ConsentChannel::Post,
                } as i32,
                purpose: c.purpose,
                state: c.state.to_proto() as i32,
            }),
            SegmentExpr::PostalCodePrefix(prefix) => Node::PostalCodePrefix(prefix),
            SegmentExpr::Departement(code) => Node::Departement(code),
            SegmentExpr::Commune(code) => Node::Commune(code),
            SegmentExpr::Region(code) => Node::Region(code),
            SegmentExpr::Created(range) => Node::Created(proto::TimeRange {
                start: timestamp(range.start),
                end: timestamp(range.end),
            }),
            SegmentExpr::HasEmail(has) => Node::HasEmail(has),
            SegmentExpr::HasPhone(has) => Node::HasPhone(has),
            SegmentExpr::HasCommune(has) => Node::HasCommune(has),
            SegmentExpr::Field(field) => Node::Field(proto::FieldCondition {
                key: field.key,
                operator: field.operator.to_proto() as i32,
                value: field.value,
            }),
            SegmentExpr::HasField(key) => Node::HasField(key),
            SegmentExpr::Contacted(range) => Node::Contacted(proto::TimeRange {
                start: timestamp(range.start),
                end: timestamp(range.end),
            }),
            SegmentExpr::HasContacted(has) => Node::HasContacted(has),
            SegmentExpr::DonationTotal(total) => Node::DonationTotal(proto::DonationTotal {
                min_cents: total.min_cents,
                currency: total.currency,
            }),
            SegmentExpr::LastDonation(range) => Node::LastDonation(proto::TimeRange {
                start: timestamp(range.start),
                end: timestamp(range.end),
            }),
            SegmentExpr::Attended(event) => Node::Attended(event),
            SegmentExpr::AttendedCountAtLeast(count) => Node::AttendedCountAtLeast(count),
        };
        Self { node: Some(node) }
    }
}

impl SegmentExpr {
    /// The JSON form of a stored tree; `None` for an empty node.
    fn from_proto(expr: proto::SegmentExpr) -> Option<Self> {
        use proto::segment_expr::Node;
        let list = |l: proto::SegmentExprList| l.items.into_iter().filter_map(Self::from_proto);
        Some(match expr.node? {
            Node::And(items) => Self::And(list(items).collect()),
            Node::Or(items) => Self::Or(list(items).collect()),
            Node::Not(inner) => Self::Not(Box::new(Self::from_proto(*inner)?)),
            Node::Tag(tag) => Self::Tag(tag),
            Node::Consent(c) => Self::Consent(ConsentCondition {
                channel: match proto::ConsentChannel::try_from(c.channel) {
                    Ok(proto::ConsentChannel::Email) => ConsentChannel::Email,
                    Ok(proto::ConsentChannel::Sms) => ConsentChannel::Sms,
                    Ok(proto::ConsentChannel::Phone) => ConsentChannel::Phone,
                    Ok(proto::ConsentChannel::Post) => ConsentChannel::Post,
                    _ => ConsentChannel::Unspecified,
                },
                purpose: c.purpose,
                state: ConsentState::from_proto(c.state),
            }),
            Node::PostalCodePrefix(prefix) => Self::PostalCodePrefix(prefix),
            Node::Departement(code) => Self::Departement(code),
            Node::Commune(code) => Self::Commune(code),
            Node::Region(code) => Self::Region(code),
            Node::Created(range) => Self::Created(TimeRange {
                start: instant(range.start),
                end: instant(range.end),
            }),
            Node::HasEmail(has) => Self::HasEmail(has),
            Node::HasPhone(has) => Self::HasPhone(has),
            Node::HasCommune(has) => Self::HasCommune(has),
            Node::Field(field) => Self::Field(FieldCondition {
                operator: FieldOperator::from_proto(field.operator)?,
                key: field.key,
                value: field.value,
            }),
            Node::HasField(key) => Self::HasField(key),
            Node::Contacted(range) => Self::Contacted(TimeRange {
                start: instant(range.start),
                end: instant(range.end),
            }),
            Node::HasContacted(has) => Self::HasContacted(has),
            Node::DonationTotal(total) => Self::DonationTotal(DonationTotal {
                min_cents: total.min_cents,
                currency: total.currency,
            }),
            Node::LastDonation(range) => Self::LastDonation(TimeRange {
                start: instant(range.start),
                end: instant(range.end),
            }),
            Node::Attended(event) => Self::Attended(event),
            Node::AttendedCountAtLeast(count) => Self::AttendedCountAtLeast(count),
        })
    }
}

impl From<SegmentFilter> for proto::SegmentFilter {
    fn from(filter: SegmentFilter) -> Self {
        let consent = filter.email_consent.unwrap_or(ConsentState::Unspecified);
        Self {
            tags_any: filter.tags_any,
            tags_all: filter.tags_all,
            tags_none: filter.tags_none,
            email_consent: consent.to_proto().into(),
            postal_code_prefixes: filter.postal_code_prefixes,
            departements: filter.departements,
            communes: filter.communes,
            regions: filter.regions,
            require_email: filter.require_email,
            expr: filter.expr.map(Into::into),
            query: filter.query.unwrap_or_default(),
            saved_segment_id: filter.saved_segment_id.unwrap_or_default(),
        }
    }
}

impl From<proto::SegmentFilter> for SegmentFilter {
    fn from(filter: proto::SegmentFilter) -> Self {
        let consent = ConsentState::from_proto(filter.email_consent);
        Self {
            tags_any: filter.tags_any,
            tags_all: filter.tags_all,
            tags_none: filter.tags_none,
            email_consent: (consent != ConsentState::Unspecified).then_some(consent),
            postal_code_prefixes: filter.postal_code_prefixes,
            departements: filter.departements,
            communes: filter.communes,
            regions: filter.regions,
            require_email: filter.require_email,
            expr: filter.expr.and_then(SegmentExpr::from_proto),
            query: non_empty(filter.query),
            saved_segment_id: non_empty(filter.saved_segment_id),
        }
    }
}

/// How many people a segment holds.
#[derive(Debug, Serialize)]
pub struct SegmentCount {
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_filter_reads_lowercase_consent_and_round_trips() {
        let json = serde_json::json!({ "tags_any": ["volunteer"], "email_consent": "granted" });
        let filter: SegmentFilter = serde_json::from_value(json).unwrap();
        let wire = proto::SegmentFilter::from(filter);
        assert_eq!(wire.email_consent, proto::ConsentState::Granted as i32);
        assert_eq!(wire.tags_any, ["volunteer"]);

        let back = serde_json::to_value(SegmentFilter::from(wire)).unwrap();
        assert_eq!(back["email_consent"], "granted");
        assert_eq!(back["tags_any"][0], "volunteer");
    }

    #[test]
    fn a_segment_tree_reads_as_json_and_round_trips_through_the_proto() {
        let json = serde_json::json!({
            "query": "tag:adhérent",
            "expr": { "and": [
                { "or": [{ "departement": "75" }, { "departement": "93" }] },
                { "not": { "consent": { "channel": "email", "state": "withdrawn" } } },
                { "created": { "start": "2024-01-01T00:00:00Z" } },
                { "has_email": true },
                { "not": { "has_commune": true } }
            ] }
        });
        let filter: SegmentFilter = serde_json::from_value(json.clone()).unwrap();
        let wire = proto::SegmentFilter::from(filter);
        assert_eq!(wire.query, "tag:adhérent");
        let Some(proto::segment_expr::Node::And(and)) = wire.expr.clone().unwrap().node else {
            panic!("{wire:?}")
        };
        assert_eq!(and.items.len(), 5);
        let Some(proto::segment_expr::Node::Not(not)) = &and.items[4].node else {
            panic!("{and:?}")
        };
        assert_eq!(not.node, Some(proto::segment_expr::Node::HasCommune(true)));
        let Some(proto::segment_expr::Node::Created(range)) = &and.items[2].node else {
            panic!("{and:?}")
        };
        assert_eq!(range.start.unwrap().seconds, 1_704_067_200);
        assert_eq!(range.end, None);

        // The tree comes back with the consent's empty purpose and both range bounds.
        let mut expected = json["expr"].clone();
        expected["and"][1]["not"]["consent"]["purpose"] = "".into();
        expected["and"][2]["created"]["end"] = serde_json::Value::Null;
        let back = serde_json::to_value(SegmentFilter::from(wire)).unwrap();
        assert_eq!(back["expr"], expected);
        assert_eq!(back["query"], "tag:adhérent");
    }

    #[test]
    fn a_misspelt_tree_node_is_refused_rather_than_ignored() {
        let json = serde_json::json!({ "expr": { "tags": "adhérent" } });
        assert!(serde_json::from_value::<SegmentFilter>(json).is_err());
    }

    #[test]
    fn a_consent_state_is_one_a_person_can_be_in() {
        let json = serde_json::json!({ "email_consent": "unspecified" });
        let error = serde_json::from_value::<SegmentFilter>(json)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("expected one of `none`, `granted`, `withdrawn`, `pending`"),
            "{error}"
        );
        let json = serde_json::json!({ "email_consent": "pending" });
        let filter: SegmentFilter = serde_json::from_value(json).unwrap();
        assert_eq!(filter.email_consent, Some(ConsentState::Pending));
    }

    #[test]
    fn a_misspelt_segment_field_is_refused_rather_than_ignored() {
        let json = serde_json::json!({ "tag_any": ["volunteer"] });
        assert!(serde_json::from_value::<SegmentFilter>(json).is_err());
    }

    #[test]
    fn an_import_job_names_its_enums_in_lowercase_and_nulls_empty_values() {
        let job = proto::ImportJob {
            id: "job".into(),
            state: proto::ImportState::Running as i32,
            preset: proto::ImportPreset::FrExcel as i32,
            create_time: Some(muster_proto::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let json = serde_json::to_value(ImportJob::from(job)).unwrap();
        assert_eq!(json["state"], "running");
        assert_eq!(json["preset"], "fr_excel");
        assert_eq!(json["error"], serde_json::Value::Null);
        assert_eq!(json["create_time"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn every_preset_name_parses_to_the_preset_it_serializes_as() {
        for name in [
            "fr_excel",
            "nationbuilder",
            "mailchimp_subscribed",
            "mailchimp_unsubscribed",
            "custom",
        ] {
            let preset = ImportPreset::parse(name).unwrap();
            assert_eq!(serde_json::to_value(preset).unwrap(), name);
        }
        assert_eq!(ImportPreset::parse("unspecified"), None);
    }
}
