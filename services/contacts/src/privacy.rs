//! The rights of a person over their data: a copy of everything contacts
//! holds about them (access) and their erasure here and, through the bus,
//! in every other service (erasure), each step audited.
//!
//! Erasure deletes the person's row rather than blanking it: every query —
//! segments, lists, counts, import matching — then forgets the person
//! without each having to learn an "erased" state, and nothing personal can
//! be left behind in a column someone adds later. What must outlive the row
//! holds no address: the consent ledger keeps each statement's state, time
//! and source (its evidence, which may hold an IP address or a file line,
//! is emptied) and ends with a withdrawal from the erasure; the opt-out is
//! kept as an HMAC of the address in `erased_addresses`, and of the phone
//! number in `erased_phones`, which imports consult.

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::person_data_service_server::PersonDataService;
use muster_proto::events::v1::PersonErased;
use muster_runtime::privacy::AddressHasher;
use muster_runtime::time::to_proto;
use muster_runtime::{ApiError, TenantId, auth};
use prost::Message;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::store::people;
use crate::{consent, events};

/// Services that hold personal data and must confirm an erasure.
pub const ERASING_SERVICES: &[&str] = &["contacts", "messaging"];

/// The handlers of `muster.contacts.v1.PersonDataService`.
#[derive(Clone)]
pub struct PrivacyApi {
    pub pool: PgPool,
    pub hasher: AddressHasher,
}

fn parse_id(raw: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a valid id")))
}

#[tonic::async_trait]
impl PersonDataService for PrivacyApi {
    #[tracing::instrument(name = "contacts.person.export", skip_all)]
    async fn export_person(
        &self,
        request: Request<pb::ExportPersonRequest>,
    ) -> Result<Response<pb::ContactsExport>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().person_id, "person_id")?;
        let person = people::get(&self.pool, tenant, id).await?;
        let consent_events = consent_events(&self.pool, tenant, id).await?;
        let activity = crate::projections::export(&self.pool, tenant, id)
            .await
            .map_err(ApiError::from)?;
        let merges = merges_into(&self.pool, tenant, &person.id).await?;
        Ok(Response::new(pb::ContactsExport {
            person: Some(person),
            consent_events,
            donations: activity.donations,
            attendance: activity.attendance,
            last_contacted_time: activity.last_contacted.map(to_proto),
            merges,
        }))
    }

    #[tracing::instrument(name = "contacts.person.erase", skip_all)]
    async fn erase_person(
        &self,
        request: Request<pb::ErasePersonRequest>,
    ) -> Result<Response<pb::Erasure>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let person = parse_id(&request.person_id, "person_id")?;
        let requested_by = match request.requested_by.trim() {
            "" => return Err(ApiError::invalid("requested_by", "is required").into()),
            by => by.to_owned(),
        };
        let erasure = erase(
            &self.pool,
            &self.hasher,
            tenant,
            person,
            &requested_by,
            request.reason.trim(),
        )
        .await?;
        tracing::info!(tenant_id = %tenant, person_id = %person, erasure_id = %erasure,
            "erasure requested; the other services confirm on the bus");
        Ok(Response::new(
            get_erasure(&self.pool, tenant, erasure).await?,
        ))
    }

    async fn get_erasure(
        &self,
        request: Request<pb::GetErasureRequest>,
    ) -> Result<Response<pb::Erasure>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        Ok(Response::new(get_erasure(&self.pool, tenant, id).await?))
    }
}

/// The records merged into `person` (the survivor's id, as `GetPerson`
/// answered it), directly or into one of them before, oldest first, with
/// what they held when merged.
async fn merges_into(
    pool: &PgPool,
    tenant: TenantId,
    person: &str,
) -> Result<Vec<pb::MergeRecord>, ApiError> {
    let survivor = parse_id(person, "person_id")?;
    let rows: Vec<MergeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{}
         SELECT id, merged_id, survivor_id, reason, merged_by, merged_at, snapshot FROM merges
         WHERE tenant_id = $1 AND survivor_id IN (SELECT id FROM merged)
         ORDER BY merged_at, id",
        crate::merge::MERGED_INTO
    )))
    .bind(tenant)
    .bind(survivor)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| pb::MergeRecord {
            merge_id: row.id.to_string(),
            merged_id: row.merged_id.to_string(),
            reason: row.reason,
            merged_by: row.merged_by,
            time: Some(to_proto(row.merged_at)),
            snapshot_json: shown_snapshot(row.snapshot).to_string(),
            survivor_id: row.survivor_id.to_string(),
        })
        .collect())
}

/// A merge's snapshot as the person sees it: their record's fields, without
/// the keys kept for matching and the organization's id.
fn shown_snapshot(mut snapshot: serde_json::Value) -> serde_json::Value {
    if let Some(fields) = snapshot.as_object_mut() {
        for internal in ["tenant_id", "email_key", "name_key"] {
            fields.remove(internal);
        }
    }
    snapshot
}

#[derive(sqlx::FromRow)]
struct MergeRow {
    id: Uuid,
    merged_id: Uuid,
    survivor_id: Uuid,
    reason: String,
    merged_by: String,
    merged_at: DateTime<Utc>,
    snapshot: serde_json::Value,
}

/// The whole ledger of `person`, oldest first, as the export shows it.
async fn consent_events(
    pool: &PgPool,
    tenant: TenantId,
    person: Uuid,
) -> Result<Vec<pb::ConsentEvent>, ApiError> {
    let (records, _) = consent::store::history(pool, tenant, person, 0, i64::MAX).await?;
    Ok(records
        .into_iter()
        .map(|record| pb::ConsentEvent {
            channel: record.channel,
            state: record.state,
            time: record.time,
            source: record.source,
            evidence: record.evidence,
            record_time: record.record_time,
            purpose: record.purpose,
            legal_basis: record.legal_basis,
            notice: record.notice,
        })
        .collect())
}

/// Erases `person` in one transaction: the audit row, the person's row
/// deleted, the ledger emptied of evidence and closed by a withdrawal, the
/// hashed opt-out, contacts' own confirmation and `contacts.person.erased`.
/// Returns the erasure's id.
pub async fn erase(
    pool: &PgPool,
    hasher: &AddressHasher,
    tenant: TenantId,
    person: Uuid,
    requested_by: &str,
    reason: &str,
) -> Result<Uuid, ApiError> {
    let mut tx = pool.begin().await?;
    // Secondary addresses and numbers (see `merge::addresses`) are erased
    // and kept hashed like the primary ones; the cascade runs after RETURNING.
    let deleted: Option<(Vec<String>, Vec<String>)> = sqlx::query_as(
        "DELETE FROM people p WHERE tenant_id = $1 AND id = $2
         RETURNING
            array_remove(ARRAY[email_key], NULL)
                || ARRAY(SELECT email_key FROM person_emails WHERE person_id = p.id),
            array_remove(ARRAY[phone], NULL)
                || ARRAY(SELECT phone FROM person_phones WHERE person_id = p.id)",
    )
    .bind(tenant)
    .bind(person)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((email_key, phone)) = deleted else {
        return earlier_erasure(&mut tx, tenant, person).await;
    };
    // A pair would tell that an erased person matched another, and can no
    // longer be merged: the person's pairs go, by their own id or one merged
    // into them.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{}
         DELETE FROM duplicates d WHERE d.tenant_id = $1
           AND (d.person_a IN (SELECT id FROM merged) OR d.person_b IN (SELECT id FROM merged))",
        crate::merge::MERGED_INTO
    )))
    .bind(tenant)
    .bind(person)
    .execute(&mut *tx)
    .await?;

    let erasure = Uuid::now_v7();
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO erasure_requests (id, tenant_id, person_id, requested_by, reason,
                                       requested_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(erasure)
    .bind(tenant)
    .bind(person)
    .bind(requested_by)
    .bind(reason)
    .bind(now)
    .execute(&mut *tx)
    .await?;

    let hashes: Vec<String> = email_key.iter().map(|key| hasher.hash(key)).collect();
    sqlx::query(
        "INSERT INTO erased_addresses (tenant_id, email_hash, erasure_id)
         SELECT $1, h, $2 FROM UNNEST($3::text[]) AS h
         ON CONFLICT (tenant_id, email_hash) DO NOTHING",
    )
    .bind(tenant)
    .bind(erasure)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    // The phone is stored in E.164 form, the form imports hash.
    let phone_hashes: Vec<String> = phone
        .iter()
        .filter(|phone| !phone.trim().is_empty())
        .map(|phone| hasher.hash(phone))
        .collect();
    sqlx::query(
        "INSERT INTO erased_phones (tenant_id, phone_hash, erasure_id)
         SELECT $1, h, $2 FROM UNNEST($3::text[]) AS h
         ON CONFLICT (tenant_id, phone_hash) DO NOTHING",
    )
    .bind(tenant)
    .bind(erasure)
    .bind(&phone_hashes)
    .execute(&mut *tx)
    .await?;
    for value in email_key.iter().chain(phone.iter()) {
        forget_in_import_issues(&mut tx, tenant, value).await?;
    }
    close_ledger(&mut tx, tenant, person, erasure, now).await?;
    crate::projections::forget(&mut tx, tenant, person).await?;
    crate::merge::forget_snapshots(&mut tx, tenant, person).await?;
    confirm(&mut tx, erasure, "contacts", now).await?;

    let body = PersonErased {
        person_id: person.to_string(),
        erasure_id: erasure.to_string(),
        email_hashes: hashes,
        time: Some(to_proto(now)),
        phone_hashes,
    }
    .encode_to_vec();
    events::person_erased(tenant)
        .enqueue_one(&mut tx, body)
        .await?;
    tx.commit().await?;
    Ok(erasure)
}

/// The erasure of a person already erased, so that a retried request gets
/// the first answer; a person never known is not found.
async fn earlier_erasure(
    tx: &mut PgConnection,
    tenant: TenantId,
    person: Uuid,
) -> Result<Uuid, ApiError> {
    let earlier: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM erasure_requests WHERE tenant_id = $1 AND person_id = $2
         ORDER BY requested_at LIMIT 1",
    )
    .bind(tenant)
    .bind(person)
    .fetch_optional(&mut *tx)
    .await?;
    match earlier {
        Some(erasure) => Ok(erasure),
        // A merged id names the survivor to erase instead.
        None => Err(crate::store::people::missing(tx, tenant, person).await),
    }
}

/// Keeps each statement's meaning (state, time, source) without its
/// evidence, and records the erasure as the last word: a withdrawal.
async fn close_ledger(
    tx: &mut PgConnection,
    tenant: TenantId,
    person: Uuid,
    erasure: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE consent_events SET evidence = '{}'::jsonb WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO consent_events
            (tenant_id, person_id, channel, state, occurred_at, source, evidence)
         VALUES ($1, $2, 'email', 'withdrawn', $3, 'erasure', $4)",
    )
    .bind(tenant)
    .bind(person)
    .bind(now)
    .bind(serde_json::json!({ "erasure_id": erasure.to_string() }))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Import issues quote rejected cells: the address or the phone (as written in
/// E.164) may be one of them.
async fn forget_in_import_issues(
    tx: &mut PgConnection,
    tenant: TenantId,
    value: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE import_issues i SET value = '(erased)'
         FROM imports m
         WHERE m.id = i.import_id AND m.tenant_id = $1 AND lower(trim(i.value)) = $2",
    )
    .bind(tenant)
    .bind(value)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records that `service` erased its copy (once per service; a repeated
/// confirmation keeps the first time).
pub async fn confirm(
    tx: &mut PgConnection,
    erasure: Uuid,
    service: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "INSERT INTO erasure_confirmations (erasure_id, service, confirmed_at)
         VALUES ($1, $2, $3) ON CONFLICT (erasure_id, service) DO NOTHING",
    )
    .bind(erasure)
    .bind(service)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    person_id: Uuid,
    requested_by: String,
    reason: String,
    requested_at: DateTime<Utc>,
}

/// The erasure request `id` of `tenant` with its confirmations.
pub async fn get_erasure(
    pool: &PgPool,
    tenant: TenantId,
    id: Uuid,
) -> Result<pb::Erasure, ApiError> {
    let request: Option<RequestRow> = sqlx::query_as(
        "SELECT person_id, requested_by, reason, requested_at
         FROM erasure_requests WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let request = request.ok_or_else(|| ApiError::not_found(format!("erasure {id}")))?;
    let confirmed: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT service, confirmed_at FROM erasure_confirmations
         WHERE erasure_id = $1 ORDER BY confirmed_at, service",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;

    let complete = ERASING_SERVICES
        .iter()
        .all(|service| confirmed.iter().any(|(s, _)| s == service));
    Ok(pb::Erasure {
        id: id.to_string(),
        person_id: request.person_id.to_string(),
        requested_by: request.requested_by,
        reason: request.reason,
        request_time: Some(to_proto(request.requested_at)),
        confirmations: confirmed
            .into_iter()
            .map(|(service, at)| pb::ErasureConfirmation {
                service,
                confirm_time: Some(to_proto(at)),
            })
            .collect(),
        expected_services: ERASING_SERVICES.iter().map(|s| s.to_string()).collect(),
        complete,
    })
}

/// The hashes among `hashes` of addresses that `tenant` erased.
pub async fn erased_among(
    tx: &mut PgConnection,
    tenant: TenantId,
    hashes: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT email_hash FROM erased_addresses WHERE tenant_id = $1 AND email_hash = ANY($2)",
    )
    .bind(tenant)
    .bind(hashes)
    .fetch_all(&mut *tx)
    .await
}

/// The hashes among `hashes` of (E.164) phone numbers that `tenant` erased.
pub async fn erased_phones_among(
    tx: &mut PgConnection,
    tenant: TenantId,
    hashes: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT phone_hash FROM erased_phones WHERE tenant_id = $1 AND phone_hash = ANY($2)",
    )
    .bind(tenant)
    .bind(hashes)
    .fetch_all(&mut *tx)
    .await
}
