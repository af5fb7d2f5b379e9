//! What contacts does with events from other services: unsubscribes and
//! complaints, and confirmations of erasures.

use chrono::{DateTime, Utc};
use muster_proto::Timestamp;
use muster_proto::events::v1::{DeliveryComplained, DeliveryUnsubscribed, ErasureConfirmed};
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;

use crate::consent::store::Statement;
use crate::consent::{self, Channel, Kind, LegalBasis};
use crate::privacy;

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
        let statement = Statement {
            person: withdrawal.person,
            channel: Channel::Email,
            purpose: "",
            kind: Kind::Withdraw,
            legal_basis: LegalBasis::Consent,
            source: withdrawal.source.to_owned(),
            notice: String::new(),
            occurred_at: withdrawal.time,
            evidence: withdrawal.evidence,
        };
        consent::store::record(&mut tx, message.tenant_id, &[statement])
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

/// The queue, and the inbox name, of erasure confirmations.
pub const CONFIRMATIONS_QUEUE: &str = "contacts.erasure-confirmations";

/// `<service>.person.erased`: a service confirms it erased what it held
/// about a person; recorded for the erasure's audit.
pub struct ErasureConfirmations {
    pub pool: PgPool,
}

impl Handler for ErasureConfirmations {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = ErasureConfirmed::decode(message.body.as_slice()).map_err(undecodable)?;
        let erasure = Uuid::parse_str(&event.erasure_id)
            .map_err(|_| HandleError::Permanent(anyhow::anyhow!("erasure_id is not an id")))?;
        if event.service.trim().is_empty() {
            return Err(HandleError::Permanent(anyhow::anyhow!(
                "the confirmation names no service"
            )));
        }

        let Some(mut tx) =
            consumer::begin_once(&self.pool, CONFIRMATIONS_QUEUE, message.message_id).await?
        else {
            return Ok(());
        };
        let known: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM erasure_requests WHERE tenant_id = $1 AND id = $2")
                .bind(message.tenant_id)
                .bind(erasure)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_none() {
            return Err(HandleError::Permanent(anyhow::anyhow!(
                "confirmation of an unknown erasure {erasure}"
            )));
        }
        privacy::confirm(&mut tx, erasure, &event.service, time(event.time.as_ref())).await?;
        tx.commit().await?;
        tracing::info!(
            tenant_id = %message.tenant_id,
            erasure_id = %erasure,
            service = %event.service,
            "erasure confirmed"
        );
        Ok(())
    }
}
