//! People as the API shows them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use muster_proto::contacts::v1 as pb;
use muster_runtime::time::{opt_to_proto, to_proto};
use muster_runtime::{ApiError, TenantId};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::custom_field::canonical_text;
use crate::domain::{EmailAddress, PhoneNumber};
use crate::merge;
use crate::segment::Filter;

const COLUMNS: &str = "id, first_name, last_name, email, phone, address_line1, postal_code, city, \
    country, departement, birth_date, tags, external_ids, email_consent, email_consent_at, \
    email_consent_source, email_consent_evidence, created_at, updated_at, commune_insee, region, \
    time_zone, custom_fields";

#[derive(sqlx::FromRow)]
struct PersonRow {
    id: Uuid,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    address_line1: Option<String>,
    postal_code: Option<String>,
    city: Option<String>,
    country: Option<String>,
    departement: Option<String>,
    birth_date: Option<NaiveDate>,
    tags: Vec<String>,
    external_ids: serde_json::Value,
    email_consent: String,
    email_consent_at: Option<DateTime<Utc>>,
    email_consent_source: Option<String>,
    email_consent_evidence: Option<serde_json::Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    commune_insee: Option<String>,
    region: Option<String>,
    time_zone: Option<String>,
    custom_fields: serde_json::Value,
}

/// One person of `tenant`; for a person merged into another, the survivor.
pub async fn get(pool: &PgPool, tenant: TenantId, id: Uuid) -> Result<pb::Person, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM people WHERE tenant_id = $1 AND id = $2");
    let mut row: Option<PersonRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    if row.is_none() {
        let mut conn = pool.acquire().await?;
        if let Some(survivor) = merge::survivor_of(&mut conn, tenant, id).await? {
            row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(survivor)
                .fetch_optional(pool)
                .await?;
        }
    }
    let mut person = [row
        .map(into_proto)
        .ok_or_else(|| ApiError::not_found(format!("person {id}")))?];
    merge::addresses::attach(pool, tenant, &mut person).await?;
    let [person] = person;
    Ok(person)
}

/// The people of `tenant` among `ids`, by id, as they are now; an id merged
/// into another or erased is not in the map (see [`get`]).
pub async fn get_many(
    pool: &PgPool,
    tenant: TenantId,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, pb::Person>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM people WHERE tenant_id = $1 AND id = ANY($2)");
    let rows: Vec<PersonRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    let mut people: Vec<pb::Person> = rows.into_iter().map(into_proto).collect();
    merge::addresses::attach(pool, tenant, &mut people).await?;
    Ok(people
        .into_iter()
        .filter_map(|person| Some((Uuid::parse_str(&person.id).ok()?, person)))
        .collect())
}

/// A page of people matching `filter`, in id order after `after`.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    filter: &Filter,
    lookup: &Lookup,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<pb::Person>, ApiError> {
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM people"));
    filter.push_where(&mut query, tenant);
    lookup.push_where(&mut query, tenant);
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let mut tx = super::segments::reading(pool, filter).await?;
    let rows: Vec<PersonRow> = query
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut people: Vec<pb::Person> = rows.into_iter().map(into_proto).collect();
    merge::addresses::attach(pool, tenant, &mut people).await?;
    Ok(people)
}

/// The address or number a listing looks a person up by, in the form
/// people are stored in.
#[derive(Debug, Default)]
pub struct Lookup {
    email_key: Option<String>,
    phone: Option<String>,
}

impl Lookup {
    /// Reads the `email` and `phone` of a request, a national number as one
    /// of `country` (checked already); empty ones look nothing up.
    pub fn parse(email: &str, phone: &str, country: &str) -> Result<Self, ApiError> {
        let country = country
            .parse::<phonenumber::country::Id>()
            .unwrap_or(phonenumber::country::Id::FR);
        let email_key = match email.trim() {
            "" => None,
            email => Some(
                EmailAddress::parse(email)
                    .map_err(|e| ApiError::invalid("email", e.reason))?
                    .key()
                    .to_owned(),
            ),
        };
        let phone = match phone.trim() {
            "" => None,
            phone => Some(
                PhoneNumber::parse(phone, country, None)
                    .map_err(|e| ApiError::invalid("phone", e.reason))?
                    .as_str()
                    .to_owned(),
            ),
        };
        Ok(Self { email_key, phone })
    }

    /// Adds the conditions: the person's own address or number, or one
    /// merged into them.
    fn push_where(&self, query: &mut QueryBuilder<Postgres>, tenant: TenantId) {
        if let Some(key) = &self.email_key {
            query
                .push(" AND (email_key = ")
                .push_bind(key.clone())
                .push(" OR id IN (SELECT person_id FROM person_emails WHERE tenant_id = ")
                .push_bind(tenant)
                .push(" AND email_key = ")
                .push_bind(key.clone())
                .push("))");
        }
        if let Some(phone) = &self.phone {
            query
                .push(" AND (phone = ")
                .push_bind(phone.clone())
                .push(" OR id IN (SELECT person_id FROM person_phones WHERE tenant_id = ")
                .push_bind(tenant)
                .push(" AND phone = ")
                .push_bind(phone.clone())
                .push("))");
        }
    }
}

fn into_proto(row: PersonRow) -> pb::Person {
    let strings = |value: Option<serde_json::Value>| -> HashMap<String, String> {
        match value {
            Some(serde_json::Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect(),
            _ => HashMap::new(),
        }
    };
    let state = match row.email_consent.as_str() {
        "granted" => pb::ConsentState::Granted,
        "withdrawn" => pb::ConsentState::Withdrawn,
        "pending" => pb::ConsentState::Pending,
        _ => pb::ConsentState::None,
    };
    pb::Person {
        id: row.id.to_string(),
        first_name: row.first_name.unwrap_or_default(),
        last_name: row.last_name.unwrap_or_default(),
        email: row.email.unwrap_or_default(),
        phone: row.phone.unwrap_or_default(),
        address: Some(pb::PostalAddress {
            line1: row.address_line1.unwrap_or_default(),
            postal_code: row.postal_code.unwrap_or_default(),
            city: row.city.unwrap_or_default(),
            country: row.country.unwrap_or_default(),
            departement: row.departement.unwrap_or_default(),
            commune_insee: row.commune_insee.unwrap_or_default(),
            region: row.region.unwrap_or_default(),
        }),
        birth_date: row.birth_date.map(|d| d.to_string()).unwrap_or_default(),
        tags: row.tags,
        email_consent: Some(pb::Consent {
            state: state as i32,
            time: opt_to_proto(row.email_consent_at),
            source: row.email_consent_source.unwrap_or_default(),
            evidence: strings(row.email_consent_evidence),
        }),
        external_ids: strings(Some(row.external_ids)),
        create_time: Some(to_proto(row.created_at)),
        update_time: Some(to_proto(row.updated_at)),
        time_zone: row.time_zone.unwrap_or_default(),
        other_emails: Vec::new(),
        other_phones: Vec::new(),
        custom_fields: match row.custom_fields {
            serde_json::Value::Object(values) => values
                .iter()
                .map(|(key, value)| (key.clone(), canonical_text(value)))
                .collect(),
            _ => HashMap::new(),
        },
    }
}

/// The error for a person `id` that is not in `tenant`: one merged into
/// another says which id to use instead (only `GetPerson` follows merges).
pub async fn missing(conn: &mut sqlx::PgConnection, tenant: TenantId, id: Uuid) -> ApiError {
    match merge::survivor_of(conn, tenant, id).await {
        Ok(Some(survivor)) => ApiError::not_found_then(
            format_args!("person {id}"),
            format_args!("it was merged into person {survivor}; use that id"),
        ),
        Ok(None) => ApiError::not_found(format!("person {id}")),
        Err(error) => error.into(),
    }
}
