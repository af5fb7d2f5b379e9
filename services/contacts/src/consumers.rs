//! What contacts does with events from other services.

use chrono::{DateTime, Utc};
use muster_proto::Timestamp;
use muster_proto::events::v1::{DeliveryComplained, DeliveryUnsubscribed};
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;

use crate::events::{self, Change};

/// The queue, and the inbox name, of the events below.
const QUEUE: &str = "contacts.unsubscribes";

/// `messaging.delivery.unsubscribed`: the person withdrew e-mail consent
/// through a link or a one-click unsubscribe. `messaging.delivery.complained`:
/// the person reported a message as spam, which withdraws it too.
pub struct Unsubscribes {
    pub pool: PgPool,
}

/// A withdrawal an event asks for.
struct Withdrawal {
    person: Uuid,
    time: DateTime<Utc>,
    evidence: serde_json::Value,
    source: &'static str,
}

impl Handler for Unsubscribes {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let withdrawal = match message.routing_key.as_str() {
            "messaging.delivery.complained" => complaint(&message.body)?,
            _ => unsubscribe(&message.body)?,
        };

        let Some(mut tx) = consumer::begin_once(&self.pool, QUEUE, message.message_id).await?
        else {
            return Ok(());
        };
        events::set_email_consent(
            &mut tx,
            message.tenant_id,
            &[withdrawal.person],
            &[withdrawal.time],
            &[withdrawal.evidence.to_string()],
            Change::Withdraw,
            withdrawal.source,
        )
        .await
        .map_err(HandleError::Transient)?;
        tx.commit().await?;
        tracing::info!(
            tenant_id = %message.tenant_id,
            person_id = %withdrawal.person,
            source = withdrawal.source,
            "e-mail consent withdrawn"
        );
        Ok(())
    }
}

fn unsubscribe(body: &[u8]) -> Result<Withdrawal, HandleError> {
    let event = DeliveryUnsubscribed::decode(body).map_err(undecodable)?;
    Ok(Withdrawal {
        person: person(&event.person_id)?,
        time: time(event.time.as_ref()),
        evidence: serde_json::json!({
            "campaign_id": event.campaign_id,
            "delivery_id": event.delivery_id,
            "method": event.method,
        }),
        source: "unsubscribe-link",
    })
}

fn complaint(body: &[u8]) -> Result<Withdrawal, HandleError> {
    let event = DeliveryComplained::decode(body).map_err(undecodable)?;
    Ok(Withdrawal {
        person: person(&event.person_id)?,
        time: time(event.time.as_ref()),
        evidence: serde_json::json!({
            "campaign_id": event.campaign_id,
            "delivery_id": event.delivery_id,
            "provider": event.provider,
        }),
        source: "complaint",
    })
}

fn undecodable(error: prost::DecodeError) -> HandleError {
    HandleError::Permanent(anyhow::anyhow!("undecodable body: {error}"))
}

fn person(id: &str) -> Result<Uuid, HandleError> {
    Uuid::parse_str(id)
        .map_err(|_| HandleError::Permanent(anyhow::anyhow!("person_id is not an id")))
}

fn time(time: Option<&Timestamp>) -> DateTime<Utc> {
    time.and_then(muster_runtime::time::from_proto)
        .unwrap_or_else(Utc::now)
}
