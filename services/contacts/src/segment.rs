//! Segment filters translated to SQL: the one module that builds dynamic
//! SQL here, with every value bound as a parameter.
//!
//! A filter is checked into a list of conditions (`Expr`), all of which must
//! hold: the flat fields of `SegmentFilter`, its `expr` tree and its `query`
//! text. The text form is parsed by [`text`], its grammar is in
//! docs/segments.md.

mod expr;
pub mod text;

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1::{ConsentState, SegmentFilter};
use muster_runtime::{ApiError, TenantId};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::consent::{Channel, LegalBasis};
use crate::domain::custom_field::Definitions;
use crate::domain::nfc;
use crate::domain::territory;

pub use expr::{ConsentLeaf, Expr, FieldOp, Leaf, MAX_CONDITIONS, MAX_DEPTH, QUOTE_LENGTH};

/// The most values one filter may hold: the entries of its lists and the
/// conditions of its tree and query, all counted together.
pub const MAX_VALUES: usize = 1_000;

/// A checked filter: conditions that must all hold, and the saved segment it names.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    conditions: Vec<Expr>,
    saved_segment: Option<Uuid>,
}

impl Filter {
    /// Checks a filter that names no custom field (one that does is refused
    /// as unknown); errors name the field or the node.
    pub fn parse(filter: &SegmentFilter) -> Result<Self, ApiError> {
        Self::parse_with(filter, &Definitions::default())
    }

    /// Checks a filter from the API, typing its custom field conditions by
    /// the organization's `fields`; errors name the field or the node.
    pub fn parse_with(filter: &SegmentFilter, fields: &Definitions) -> Result<Self, ApiError> {
        // Counted before anything else is read, so a huge list costs nothing.
        let mut values = Values::default();
        for (field, list) in [
            ("tags_any", &filter.tags_any),
            ("tags_all", &filter.tags_all),
            ("tags_none", &filter.tags_none),
            ("postal_code_prefixes", &filter.postal_code_prefixes),
            ("departements", &filter.departements),
            ("communes", &filter.communes),
            ("regions", &filter.regions),
        ] {
            values.add(&format!("filter.{field}"), list.len())?;
        }

        // An empty value would silently widen the filter to everyone.
        let clean = |values: &[String], field: &str| -> Result<Vec<String>, ApiError> {
            values
                .iter()
                .enumerate()
                .map(|(n, v)| match v.trim() {
                    "" => Err(ApiError::invalid(
                        format!("filter.{field}[{n}]"),
                        "an empty value; leave the list out to match anyone",
                    )),
                    v if v.contains('\0') => Err(ApiError::invalid(
                        format!("filter.{field}[{n}]"),
                        expr::NUL_MESSAGE,
                    )),
                    v => Ok(v.to_owned()),
                })
                .collect()
        };
        let mut conditions = Vec::new();
        let tags_any = clean(&filter.tags_any, "tags_any")?;
        if !tags_any.is_empty() {
            conditions.push(Expr::Leaf(Leaf::TagsAny(tags_any)));
        }
        let tags_all = clean(&filter.tags_all, "tags_all")?;
        if !tags_all.is_empty() {
            conditions.push(Expr::Leaf(Leaf::TagsAll(tags_all)));
        }
        let tags_none = clean(&filter.tags_none, "tags_none")?;
        if !tags_none.is_empty() {
            conditions.push(Expr::Not(Box::new(Expr::Leaf(Leaf::TagsAny(tags_none)))));
        }
        let mut leaf = |leaf: Leaf| conditions.push(Expr::Leaf(leaf));
        match ConsentState::try_from(filter.email_consent) {
            Ok(ConsentState::Unspecified) => {}
            Ok(state) => leaf(Leaf::EmailConsent(expr::consent_value(state))),
            Err(_) => {
                return Err(ApiError::invalid(
                    "filter.email_consent",
                    format!("unknown consent state {}", filter.email_consent),
                ));
            }
        }
        let mut prefixes = Vec::new();
        for prefix in clean(&filter.postal_code_prefixes, "postal_code_prefixes")? {
            prefixes.push(
                expr::postal_prefix(&prefix)
                    .map_err(|m| ApiError::invalid("filter.postal_code_prefixes", m))?,
            );
        }
        if !prefixes.is_empty() {
            leaf(Leaf::PostalPrefix(prefixes));
        }
        // Each territory list is checked against the official geography, so a
        // mistyped code is an error rather than a segment of no one.
        type Place = fn(&str) -> Result<String, String>;
        type Condition = fn(Vec<String>) -> Leaf;
        let places: [(&str, &[String], Place, Condition); 3] = [
            (
                "departements",
                &filter.departements,
                territory::departement,
                Leaf::Departement,
            ),
            (
                "communes",
                &filter.communes,
                territory::commune,
                Leaf::Commune,
            ),
            ("regions", &filter.regions, territory::region, Leaf::Region),
        ];
        for (field, written, place, condition) in places {
            let codes = clean(written, field)?
                .iter()
                .enumerate()
                .map(|(n, value)| {
                    place(value).map_err(|m| ApiError::invalid(format!("filter.{field}[{n}]"), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if !codes.is_empty() {
                leaf(condition(codes));
            }
        }
        if filter.require_email {
            leaf(Leaf::HasEmail(true));
        }

        if let Some(tree) = &filter.expr {
            let tree = Expr::check(tree, "filter.expr", fields)?;
            values.add("filter.expr", tree.values())?;
            conditions.push(tree);
        }
        if !filter.query.trim().is_empty() {
            let tree = text::parse_with(&filter.query, fields)
                .map_err(|error| ApiError::invalid("filter.query", error.to_string()))?;
            let tree = Expr::check(&tree, "filter.query", fields)?;
            values.add("filter.query", tree.values())?;
            conditions.push(tree);
        }
        let saved_segment = match filter.saved_segment_id.trim() {
            "" => None,
            id => Some(Uuid::parse_str(id).map_err(|_| {
                ApiError::invalid(
                    "filter.saved_segment_id",
                    format!(
                        "{} is not a saved segment id; list them with ListSavedSegments",
                        expr::quote(id)
                    ),
                )
            })?),
        };
        Ok(Self {
            conditions,
            saved_segment,
        })
    }

    /// The saved segment this filter names, to be resolved with [`Filter::and_saved`].
    pub fn saved_segment(&self) -> Option<Uuid> {
        self.saved_segment
    }

    /// This filter narrowed to the people of a saved segment's filter.
    pub fn and_saved(mut self, saved: Filter) -> Self {
        self.saved_segment = None;
        self.conditions.extend(saved.conditions);
        self
    }

    /// This filter under the organization's consent policy now: grants on a
    /// basis it forbids on their channel do not count.
    pub fn with_policy(mut self, forbidden: &[(Channel, LegalBasis)]) -> Self {
        if !forbidden.is_empty() {
            for condition in &mut self.conditions {
                condition.apply_policy(forbidden);
            }
        }
        self
    }

    /// Whether any condition reads the donations or attendance projected
    /// from other services' events.
    pub fn reads_projections(&self) -> bool {
        self.conditions.iter().any(Expr::reads_projections)
    }

    /// A filter for people who may receive an e-mail campaign.
    pub fn reachable_by_email(mut self) -> Self {
        self.conditions
            .push(Expr::Leaf(Leaf::EmailConsent("granted")));
        self.conditions.push(Expr::Leaf(Leaf::HasEmail(true)));
        self
    }

    /// Appends ` WHERE …` matching this filter within `tenant`. Every value
    /// is bound, so run the query unprepared (`persistent(false)`): a
    /// prepared statement soon gets one generic plan for all values, chosen
    /// without knowing that one tag is on a third of the people and another on
    /// a handful (a count took twice the time of the same SQL with literals).
    pub fn push_where(&self, query: &mut QueryBuilder<Postgres>, tenant: TenantId) {
        query.push(" WHERE tenant_id = ").push_bind(tenant);
        for condition in &self.conditions {
            query.push(" AND ");
            push_expr(query, condition, tenant);
        }
    }
}

/// The running count of a filter's values, against [`MAX_VALUES`].
#[derive(Default)]
struct Values(usize);

impl Values {
    /// Adds the `count` values of `field`, refusing the filter past the limit.
    fn add(&mut self, field: &str, count: usize) -> Result<(), ApiError> {
        self.0 += count;
        match self.0 > MAX_VALUES {
            true => Err(ApiError::invalid(
                field,
                format!(
                    "the filter has more than {MAX_VALUES} values in all (list entries and \
                     conditions together); tag the people once and filter on that tag"
                ),
            )),
            false => Ok(()),
        }
    }
}

/// Appends `expr` as one SQL boolean term (parenthesized when compound); the
/// projections of other services' events are read within `tenant`.
fn push_expr(query: &mut QueryBuilder<Postgres>, expr: &Expr, tenant: TenantId) {
    match expr {
        Expr::And(items) | Expr::Or(items) if items.is_empty() => {
            query.push(if matches!(expr, Expr::And(_)) {
                "TRUE"
            } else {
                "FALSE"
            });
        }
        Expr::And(items) | Expr::Or(items) => {
            let joiner = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            query.push("(");
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    query.push(joiner);
                }
                push_expr(query, item, tenant);
            }
            query.push(")");
        }
        // A missing value makes a comparison NULL; NOT must still select the
        // people without the value (NOT departement:75 includes the unknown).
        Expr::Not(inner) if inner.may_be_null() => {
            query.push("(");
            push_expr(query, inner, tenant);
            query.push(") IS NOT TRUE");
        }
        Expr::Not(inner) => {
            query.push("NOT (");
            push_expr(query, inner, tenant);
            query.push(")");
        }
        Expr::Leaf(leaf) => push_leaf(query, leaf, tenant),
    }
}

/// Tags as they are stored: composed (NFC), so that a tag typed with a
/// combining accent, in any form of the filter, matches the same tag.
fn composed(tags: &[String]) -> Vec<String> {
    tags.iter().map(|tag| nfc(tag)).collect()
}

fn push_leaf(query: &mut QueryBuilder<Postgres>, leaf: &Leaf, tenant: TenantId) {
    match leaf {
        Leaf::TagsAny(tags) => {
            query.push("tags && ").push_bind(composed(tags));
        }
        Leaf::TagsAll(tags) => {
            query.push("tags @> ").push_bind(composed(tags));
        }
        Leaf::EmailConsent(state) => {
            query.push("email_consent = ").push_bind(*state);
        }
        Leaf::Consent(leaf) => push_consent(query, leaf),
        Leaf::PostalPrefix(prefixes) => {
            // Byte ranges rather than LIKE: the (tenant_id, postal_code
            // text_pattern_ops) index serves them with bound values.
            if prefixes.len() > 1 {
                query.push("(");
            }
            for (n, prefix) in prefixes.iter().enumerate() {
                if n > 0 {
                    query.push(" OR ");
                }
                query
                    .push("(postal_code ~>=~ ")
                    .push_bind(prefix.start.clone())
                    .push(" AND postal_code ~<~ ")
                    .push_bind(prefix.end.clone())
                    .push(")");
            }
            if prefixes.len() > 1 {
                query.push(")");
            }
        }
        Leaf::Departement(codes) => {
            query
                .push("departement = ANY(")
                .push_bind(codes.clone())
                .push(")");
        }
        Leaf::Commune(codes) => {
            query
                .push("commune_insee = ANY(")
                .push_bind(codes.clone())
                .push(")");
        }
        Leaf::Region(codes) => {
            query
                .push("region = ANY(")
                .push_bind(codes.clone())
                .push(")");
        }
        Leaf::Created { start, end } => push_range(query, "created_at", *start, *end),
        Leaf::HasEmail(true) => {
            query.push("email_key IS NOT NULL");
        }
        Leaf::HasEmail(false) => {
            query.push("email_key IS NULL");
        }
        Leaf::HasPhone(true) => {
            query.push("phone IS NOT NULL");
        }
        Leaf::HasPhone(false) => {
            query.push("phone IS NULL");
        }
        Leaf::HasCommune(true) => {
            query.push("commune_insee IS NOT NULL");
        }
        Leaf::HasCommune(false) => {
            query.push("commune_insee IS NULL");
        }
        // Containment, so that the GIN index on custom_fields serves it.
        Leaf::Field(test) if test.operator == FieldOp::Equal => {
            let mut pair = serde_json::Map::new();
            pair.insert(test.key.clone(), test.value.clone());
            query
                .push("custom_fields @> ")
                .push_bind(serde_json::Value::Object(pair));
        }
        // TODO(#4): orderings on a custom field scan the organization's
        // people; an expression index per ordered field would serve them.
        Leaf::Field(test) => {
            query
                .push("(jsonb_typeof(custom_fields -> ")
                .push_bind(test.key.clone())
                .push(") = ")
                .push_bind(test.json_type)
                .push(" AND custom_fields -> ")
                .push_bind(test.key.clone())
                .push(test.operator.sql())
                .push_bind(test.value.clone())
                .push(")");
        }
        Leaf::HasField(key) => {
            query.push("custom_fields ? ").push_bind(key.clone());
        }
        // The projections are read as uncorrelated sets of people, so that
        // PostgreSQL joins them once rather than probing per person.
        Leaf::Contacted { start, end } => {
            query
                .push("id IN (SELECT person_id FROM last_contacts WHERE tenant_id = ")
                .push_bind(tenant)
                .push(" AND ");
            push_range(query, "contacted_at", *start, *end);
            query.push(")");
        }
        Leaf::HasContacted(contacted) => {
            query
                .push(if *contacted { "id IN" } else { "id NOT IN" })
                .push(" (SELECT person_id FROM last_contacts WHERE tenant_id = ")
                .push_bind(tenant)
                .push(")");
        }
        Leaf::DonationTotal {
            currency,
            min_cents,
        } => {
            query
                .push("id IN (SELECT person_id FROM person_donations WHERE tenant_id = ")
                .push_bind(tenant)
                .push(" AND currency = ")
                .push_bind(currency.clone())
                .push(" AND total_cents >= ")
                .push_bind(*min_cents)
                .push(")");
        }
        Leaf::LastDonation { start, end } => {
            query
                .push("id IN (SELECT person_id FROM person_donations WHERE tenant_id = ")
                .push_bind(tenant)
                .push(" GROUP BY person_id HAVING ");
            push_range(query, "max(last_at)", *start, *end);
            query.push(")");
        }
        Leaf::Attended(event) => {
            query
                .push("id IN (SELECT person_id FROM attendance WHERE tenant_id = ")
                .push_bind(tenant)
                .push(" AND event_id = ")
                .push_bind(event.clone())
                .push(" AND state = 'attended')");
        }
        Leaf::AttendedCount(count) => {
            query
                .push("id IN (SELECT person_id FROM attendance WHERE tenant_id = ")
                .push_bind(tenant)
                .push(" AND state = 'attended' GROUP BY person_id HAVING count(*) >= ")
                .push_bind(i64::from(*count))
                .push(")");
        }
    }
}

/// `column` within `[start, end)`; `column` is a constant of this module.
fn push_range(
    query: &mut QueryBuilder<Postgres>,
    column: &'static str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) {
    match (start, end) {
        (Some(start), Some(end)) => {
            query
                .push(format!("({column} >= "))
                .push_bind(start)
                .push(format!(" AND {column} < "))
                .push_bind(end)
                .push(")");
        }
        (Some(start), None) => {
            query.push(format!("{column} >= ")).push_bind(start);
        }
        (None, Some(end)) => {
            query.push(format!("{column} < ")).push_bind(end);
        }
        (None, None) => {
            query.push("TRUE");
        }
    }
}

/// The current state of the leaf's channel and purpose, from `consents`
/// (general e-mail consent from `people.email_consent`, its index). A
/// person without a row there has none.
fn push_consent(query: &mut QueryBuilder<Postgres>, leaf: &ConsentLeaf) {
    let forbidden: Vec<String> = leaf.forbidden.iter().map(|b| b.to_string()).collect();
    let row = "SELECT 1 FROM consents c WHERE c.tenant_id = people.tenant_id \
               AND c.person_id = people.id AND c.channel = ";
    if leaf.channel == Channel::Email && leaf.purpose.is_empty() {
        query
            .push("(email_consent = ")
            .push_bind(leaf.state)
            .push(" AND NOT EXISTS (")
            .push(row)
            .push("'email' AND c.purpose = '' AND c.legal_basis = ANY(")
            .push_bind(forbidden)
            .push(")))");
        return;
    }
    if leaf.state == "none" {
        query.push("NOT ");
    }
    query
        .push("EXISTS (")
        .push(row)
        .push_bind(leaf.channel.as_str())
        .push(" AND c.purpose = ")
        .push_bind(leaf.purpose);
    if leaf.state != "none" {
        query.push(" AND c.state = ").push_bind(leaf.state);
    }
    if !forbidden.is_empty() {
        query
            .push(" AND NOT (c.legal_basis = ANY(")
            .push_bind(forbidden)
            .push("))");
    }
    query.push(")");
}

#[cfg(test)]
mod tests;
