//! One delivery as the API shows it: its state, the server's answer, and
//! the bounces and complaints reported about it.

use chrono::{DateTime, Utc};
use muster_proto::messaging::v1 as pb;
use muster_runtime::time::opt_to_proto;
use muster_runtime::{ApiError, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

use crate::bounces::listing::{self, Filter, MAX_PAGE};
use crate::store;

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    campaign_id: Uuid,
    person_id: Uuid,
    email: String,
    state: String,
    attempts: i32,
    error: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    provider_message_id: Option<String>,
}

async fn row(pool: &PgPool, tenant: TenantId, id: Uuid) -> Result<DeliveryRow, ApiError> {
    sqlx::query_as(
        "SELECT id, campaign_id, person_id, email, state, attempts, error, sent_at,
                provider_message_id
         FROM deliveries WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("delivery {id}")))
}

/// The delivery `id` of `tenant` with its newest bounces. A claim older than
/// `stale` is shown as what it is: left by a sender that died mid-send.
#[tracing::instrument(
    name = "messaging.deliveries.get",
    skip_all,
    fields(tenant_id = %tenant, delivery_id = %id)
)]
pub async fn get(
    pool: &PgPool,
    tenant: TenantId,
    id: Uuid,
    stale: std::time::Duration,
) -> Result<pb::Delivery, ApiError> {
    let mut delivery = row(pool, tenant, id).await?;
    if delivery.state == "sending"
        && store::reap_stale_claims(pool, Some(delivery.campaign_id), stale).await? > 0
    {
        delivery = row(pool, tenant, id).await?;
    }

    let bounces = listing::list(pool, tenant, Filter::Delivery(id), None, MAX_PAGE).await?;
    Ok(pb::Delivery {
        id: delivery.id.to_string(),
        campaign_id: delivery.campaign_id.to_string(),
        person_id: delivery.person_id.to_string(),
        email: delivery.email,
        state: state_to_proto(&delivery.state) as i32,
        attempts: delivery.attempts.max(0) as u32,
        error: delivery.error.unwrap_or_default(),
        send_time: opt_to_proto(delivery.sent_at),
        provider_answer: delivery.provider_message_id.unwrap_or_default(),
        bounces: bounces.bounces,
    })
}

fn state_to_proto(state: &str) -> pb::DeliveryState {
    match state {
        "queued" => pb::DeliveryState::Queued,
        "sending" => pb::DeliveryState::Sending,
        "sent" => pb::DeliveryState::Sent,
        "failed" => pb::DeliveryState::Failed,
        "suppressed" => pb::DeliveryState::Suppressed,
        "cancelled" => pb::DeliveryState::Cancelled,
        "unknown" => pb::DeliveryState::Unknown,
        _ => pb::DeliveryState::Unspecified,
    }
}
