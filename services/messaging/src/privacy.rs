//! A person's rights over what messaging holds: the export of their
//! deliveries, bounces and suppressions, and the erasure of the addresses
//! and names in them when contacts announces `contacts.person.erased`.
//!
//! Erasure blanks the address and names of every delivery of the person
//! (cancelling those still queued) and replaces each of their addresses in
//! suppressions and bounces by its keyed hash (see
//! [`muster_runtime::privacy`]). Launch stores the same hash on every new
//! delivery, and the launch and send-time suppression checks compare it too,
//! so the erased address stays blocked without being kept.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use muster_proto::events::v1::{ErasureConfirmed, PersonErased};
use muster_proto::messaging::v1 as pb;
use muster_proto::messaging::v1::person_data_service_server::PersonDataService;
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use muster_runtime::outbox::{Destination, Outgoing};
use muster_runtime::privacy::AddressHasher;
use muster_runtime::time::{opt_to_proto, to_proto};
use muster_runtime::{ApiError, TenantId, auth};
use prost::Message;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The queue, and the inbox name, of erasures announced by contacts.
pub const ERASURES_QUEUE: &str = "messaging.erasures";
/// Messaging's confirmation that it erased a person.
pub const PERSON_ERASED: &str = "messaging.person.erased";

/// The handlers of `muster.messaging.v1.PersonDataService`.
#[derive(Clone)]
pub struct PrivacyApi {
    pub pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    campaign_id: Uuid,
    campaign_name: String,
    state: String,
    email: String,
    first_name: String,
    last_name: String,
    city: String,
    attempts: i32,
    claimed_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct BounceRow {
    id: Uuid,
    campaign_id: Option<Uuid>,
    delivery_id: Option<Uuid>,
    email_key: String,
    kind: String,
    status: String,
    reason: String,
    provider: String,
    received_at: DateTime<Utc>,
}

#[tonic::async_trait]
impl PersonDataService for PrivacyApi {
    #[tracing::instrument(name = "messaging.person.export", skip_all)]
    async fn export_person(
        &self,
        request: Request<pb::ExportPersonRequest>,
    ) -> Result<Response<pb::MessagingExport>, Status> {
        let tenant = auth::tenant(&request)?;
        let raw = &request.get_ref().person_id;
        let person = Uuid::parse_str(raw.trim())
            .map_err(|_| ApiError::invalid("person_id", format!("{raw:?} is not a valid id")))?;
        Ok(Response::new(export(&self.pool, tenant, person).await?))
    }
}

/// Everything messaging holds about `person`, and about the people merged
/// into them whose deliveries could not move (see [`crate::merges`]).
pub async fn export(
    pool: &PgPool,
    tenant: TenantId,
    person: Uuid,
) -> Result<pb::MessagingExport, ApiError> {
    let people = crate::merges::with_merged(&mut *pool.acquire().await?, tenant, person).await?;
    let deliveries: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT d.id, d.campaign_id, c.name AS campaign_name, d.state, d.email, d.first_name,
                d.last_name, d.city, d.attempts, d.claimed_at, d.sent_at, d.error
         FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
         WHERE d.tenant_id = $1 AND d.person_id = ANY($2) ORDER BY d.id",
    )
    .bind(tenant)
    .bind(&people)
    .fetch_all(pool)
    .await?;
    let bounces: Vec<BounceRow> = sqlx::query_as(
        "SELECT id, campaign_id, delivery_id, email_key, kind, status, reason, provider,
                received_at
         FROM bounces WHERE tenant_id = $1 AND person_id = ANY($2) ORDER BY received_at, id",
    )
    .bind(tenant)
    .bind(&people)
    .fetch_all(pool)
    .await?;
    // A suppression names the person when it came from them; one that came
    // from an address of theirs (a bounce before they were known) by address.
    let suppressions: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.email_key, s.reason, s.created_at FROM suppressions s
         WHERE s.tenant_id = $1
           AND (s.person_id = ANY($2)
                OR s.email_key IN (SELECT lower(d.email) FROM deliveries d
                                   WHERE d.tenant_id = $1 AND d.person_id = ANY($2))
                OR s.email_key IN (SELECT d.email_hash FROM deliveries d
                                   WHERE d.tenant_id = $1 AND d.person_id = ANY($2)))
         ORDER BY s.created_at, s.email_key",
    )
    .bind(tenant)
    .bind(&people)
    .fetch_all(pool)
    .await?;

    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    Ok(pb::MessagingExport {
        deliveries: deliveries
            .into_iter()
            .map(|d| pb::ExportedDelivery {
                id: d.id.to_string(),
                campaign_id: d.campaign_id.to_string(),
                campaign_name: d.campaign_name,
                state: d.state,
                email: d.email,
                first_name: d.first_name,
                last_name: d.last_name,
                city: d.city,
                attempts: d.attempts.max(0) as u32,
                claim_time: opt_to_proto(d.claimed_at),
                send_time: opt_to_proto(d.sent_at),
                error: d.error.unwrap_or_default(),
            })
            .collect(),
        bounces: bounces
            .into_iter()
            .map(|b| pb::ExportedBounce {
                id: b.id.to_string(),
                campaign_id: id(b.campaign_id),
                delivery_id: id(b.delivery_id),
                email_key: b.email_key,
                kind: b.kind,
                status: b.status,
                reason: b.reason,
                provider: b.provider,
                receive_time: Some(to_proto(b.received_at)),
            })
            .collect(),
        suppressions: suppressions
            .into_iter()
            .map(|(email_key, reason, at)| pb::ExportedSuppression {
                email_key,
                reason,
                create_time: Some(to_proto(at)),
            })
            .collect(),
    })
}

/// `contacts.person.erased`: erases the person here, then confirms with
/// [`PERSON_ERASED`] in the same transaction.
pub struct Erasures {
    pub pool: PgPool,
    pub hasher: AddressHasher,
}

impl Handler for Erasures {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = PersonErased::decode(message.body.as_slice())
            .map_err(|e| HandleError::Permanent(anyhow::anyhow!("undecodable body: {e}")))?;
        let person = Uuid::parse_str(&event.person_id)
            .map_err(|_| HandleError::Permanent(anyhow::anyhow!("person_id is not an id")))?;

        let Some(mut tx) =
            consumer::begin_once(&self.pool, ERASURES_QUEUE, message.message_id).await?
        else {
            return Ok(());
        };
        let tenant = message.tenant_id;
        // Deliveries a merge left under a merged id are the person's too.
        let mut addresses = 0;
        for id in crate::merges::with_merged(&mut tx, tenant, person).await? {
            addresses += erase(&mut tx, &self.hasher, tenant, id, &event.email_hashes).await?;
        }

        let body = ErasureConfirmed {
            person_id: event.person_id.clone(),
            erasure_id: event.erasure_id.clone(),
            service: "messaging".into(),
            time: Some(to_proto(Utc::now())),
        }
        .encode_to_vec();
        confirmation(tenant).enqueue_one(&mut tx, body).await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %tenant, person_id = %person, addresses,
            erasure_id = %event.erasure_id, "person erased");
        Ok(())
    }
}

fn confirmation(tenant_id: TenantId) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key: PERSON_ERASED,
        message_type: "muster.events.v1.ErasureConfirmed",
    }
}

/// What an error or reason becomes when it may quote the address.
const REDACTED: &str = "(redacted on erasure)";

/// Erases `person`; returns how many distinct addresses were hashed.
async fn erase(
    tx: &mut PgConnection,
    hasher: &AddressHasher,
    tenant: TenantId,
    person: Uuid,
    announced: &[String],
) -> sqlx::Result<usize> {
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT lower(trim(email)) FROM deliveries
         WHERE tenant_id = $1 AND person_id = $2 AND email <> ''
         UNION SELECT email_key FROM bounces WHERE tenant_id = $1 AND person_id = $2
         UNION SELECT email_key FROM suppressions WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(&mut *tx)
    .await?;
    // Hashes already (an earlier erasure) have no '@' and stay as they are.
    let addresses: Vec<String> = found.into_iter().filter(|a| a.contains('@')).collect();
    let hashes: Vec<String> = addresses.iter().map(|a| hasher.hash(a)).collect();
    let every_hash: BTreeSet<&String> = hashes.iter().chain(announced).collect();
    let every_hash: Vec<String> = every_hash.into_iter().cloned().collect();

    sqlx::query(
        "UPDATE deliveries d SET email_hash = m.hash
         FROM UNNEST($3::text[], $4::text[]) AS m(address, hash)
         WHERE d.tenant_id = $1 AND d.person_id = $2 AND lower(trim(d.email)) = m.address",
    )
    .bind(tenant)
    .bind(person)
    .bind(&addresses)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE deliveries SET email = '', first_name = '', last_name = '', city = '',
            state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
            error = CASE WHEN error LIKE '%@%' THEN $3 ELSE error END
         WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .bind(REDACTED)
    .execute(&mut *tx)
    .await?;

    sqlx::query(
        "UPDATE bounces b SET email_key = m.hash,
            reason = CASE WHEN b.reason LIKE '%@%' THEN $4 ELSE b.reason END
         FROM UNNEST($2::text[], $3::text[]) AS m(address, hash)
         WHERE b.tenant_id = $1 AND b.email_key = m.address",
    )
    .bind(tenant)
    .bind(&addresses)
    .bind(&hashes)
    .bind(REDACTED)
    .execute(&mut *tx)
    .await?;

    sqlx::query(
        "INSERT INTO suppressions (tenant_id, email_key, person_id, reason)
         SELECT $1, h, $2, 'erased' FROM UNNEST($3::text[]) AS h
         ON CONFLICT (tenant_id, email_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(person)
    .bind(&every_hash)
    .execute(&mut *tx)
    .await?;
    for table in ["suppressions", "consent_versions"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND email_key = ANY($2)"
        )))
        .bind(tenant)
        .bind(&addresses)
        .execute(&mut *tx)
        .await?;
    }
    Ok(addresses.len())
}
