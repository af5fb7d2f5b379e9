//! The suppression projection: consent changes announced by contacts.

use muster_proto::contacts::v1::ConsentState;
use muster_proto::events::v1::ConsentChanged;
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;

/// `contacts.consent.changed`: a withdrawal of the general e-mail consent
/// suppresses the address; a later grant lifts a suppression that came from
/// consent (never a bounce's). A purpose's consent leaves the address as it is.
pub struct ConsentProjection {
    pub pool: PgPool,
}

impl Handler for ConsentProjection {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = ConsentChanged::decode(message.body.as_slice())
            .map_err(|e| HandleError::Permanent(anyhow::anyhow!("undecodable body: {e}")))?;
        if event.channel != "email" || !event.purpose.is_empty() || event.email.trim().is_empty() {
            return Ok(());
        }
        let person = Uuid::parse_str(&event.person_id).ok();
        let email_key = event.email.trim().to_lowercase();
        let time = event
            .time
            .as_ref()
            .and_then(muster_runtime::time::from_proto)
            .unwrap_or_else(chrono::Utc::now);

        let Some(mut tx) =
            consumer::begin_once(&self.pool, "messaging.consent", message.message_id).await?
        else {
            return Ok(());
        };
        match ConsentState::try_from(event.state) {
            Ok(ConsentState::Withdrawn) => {
                sqlx::query(
                    "INSERT INTO suppressions (tenant_id, email_key, person_id, reason, created_at)
                     VALUES ($1, $2, $3, 'consent-withdrawn', $4)
                     ON CONFLICT (tenant_id, email_key) DO NOTHING",
                )
                .bind(message.tenant_id)
                .bind(&email_key)
                .bind(person)
                .bind(time)
                .execute(&mut *tx)
                .await?;
            }
            Ok(ConsentState::Granted) => {
                sqlx::query(
                    "DELETE FROM suppressions WHERE tenant_id = $1 AND email_key = $2
                       AND reason IN ('consent-withdrawn', 'unsubscribed') AND created_at < $3",
                )
                .bind(message.tenant_id)
                .bind(&email_key)
                .bind(time)
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(())
    }
}
