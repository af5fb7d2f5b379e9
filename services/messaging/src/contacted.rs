//! `messaging.delivery.sent`: what a sender sent, announced per group of
//! deliveries (one event for the group, never one per message), so that
//! contacts knows when each person was last contacted.

use chrono::{DateTime, Utc};
use muster_proto::events::v1::{DeliveriesSent, SentDelivery};
use muster_runtime::TenantId;
use muster_runtime::outbox::{Destination, Outgoing};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

/// The routing key of [`DeliveriesSent`].
pub const DELIVERY_SENT: &str = "messaging.delivery.sent";

/// Adds the outbox row announcing `sent` (delivery, person, time), in the
/// transaction that records those sends; nothing when the group sent none.
pub async fn announce(
    tx: &mut PgConnection,
    tenant: TenantId,
    campaign: Uuid,
    sent: &[(Uuid, Uuid, DateTime<Utc>)],
) -> sqlx::Result<()> {
    if sent.is_empty() {
        return Ok(());
    }
    let event = DeliveriesSent {
        campaign_id: campaign.to_string(),
        channel: "email".into(),
        deliveries: sent
            .iter()
            .map(|(delivery, person, at)| SentDelivery {
                delivery_id: delivery.to_string(),
                person_id: person.to_string(),
                time: Some(muster_runtime::time::to_proto(*at)),
            })
            .collect(),
    };
    let outgoing = Outgoing {
        tenant_id: tenant,
        destination: Destination::Event,
        routing_key: DELIVERY_SENT,
        message_type: "muster.events.v1.DeliveriesSent",
    };
    outgoing.enqueue_one(tx, event.encode_to_vec()).await
}
