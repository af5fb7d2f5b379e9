//! What contacts does with events from other services.

use muster_proto::events::v1::DeliveryUnsubscribed;
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;

use crate::events::{self, Change};

/// `messaging.delivery.unsubscribed`: the person withdrew e-mail consent
/// through a link or a one-click unsubscribe.
pub struct Unsubscribes {
    pub pool: PgPool,
}

impl Handler for Unsubscribes {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = DeliveryUnsubscribed::decode(message.body.as_slice())
            .map_err(|e| HandleError::Permanent(anyhow::anyhow!("undecodable body: {e}")))?;
        let person = Uuid::parse_str(&event.person_id)
            .map_err(|_| HandleError::Permanent(anyhow::anyhow!("person_id is not an id")))?;
        let time = event
            .time
            .as_ref()
            .and_then(muster_runtime::time::from_proto)
            .unwrap_or_else(chrono::Utc::now);

        let Some(mut tx) =
            consumer::begin_once(&self.pool, "contacts.unsubscribes", message.message_id).await?
        else {
            return Ok(());
        };
        let evidence = serde_json::json!({
            "campaign_id": event.campaign_id,
            "delivery_id": event.delivery_id,
            "method": event.method,
        })
        .to_string();
        events::set_email_consent(
            &mut tx,
            message.tenant_id,
            &[person],
            &[time],
            &[evidence],
            Change::Withdraw,
            "unsubscribe-link",
        )
        .await
        .map_err(HandleError::Transient)?;
        tx.commit().await?;
        tracing::info!(tenant_id = %message.tenant_id, person_id = %person, "unsubscribe applied");
        Ok(())
    }
}
