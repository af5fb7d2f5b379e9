//! Send jobs: batches of deliveries put on the work queue through the outbox.

use muster_proto::events::v1::SendJob;
use muster_runtime::TenantId;
use muster_runtime::outbox::{Destination, Outgoing};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

/// Deliveries per job.
pub const JOB_SIZE: usize = 100;

/// The work queue senders consume.
pub const SEND_QUEUE: &str = "messaging.email.send";

/// Enqueues jobs for every still-queued delivery of `campaign`.
pub async fn enqueue_queued(
    tx: &mut PgConnection,
    tenant: TenantId,
    campaign: Uuid,
) -> sqlx::Result<usize> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM deliveries WHERE campaign_id = $1 AND state = 'queued' ORDER BY id",
    )
    .bind(campaign)
    .fetch_all(&mut *tx)
    .await?;
    enqueue(tx, tenant, campaign, &ids, SEND_QUEUE).await?;
    sqlx::query("UPDATE campaigns SET enqueued_at = now() WHERE id = $1")
        .bind(campaign)
        .execute(&mut *tx)
        .await?;
    Ok(ids.len())
}

/// Enqueues jobs for `deliveries` on `queue` (the send queue or its retry queue).
pub async fn enqueue(
    tx: &mut PgConnection,
    tenant: TenantId,
    campaign: Uuid,
    deliveries: &[Uuid],
    queue: &str,
) -> sqlx::Result<()> {
    let bodies = deliveries
        .chunks(JOB_SIZE)
        .map(|chunk| {
            SendJob {
                campaign_id: campaign.to_string(),
                delivery_ids: chunk.iter().map(Uuid::to_string).collect(),
            }
            .encode_to_vec()
        })
        .collect();
    let outgoing = Outgoing {
        tenant_id: tenant,
        destination: Destination::Queue,
        routing_key: queue,
        message_type: "muster.events.v1.SendJob",
    };
    outgoing.enqueue(tx, bodies).await
}
