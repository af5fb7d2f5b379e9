//! The suppression projection: consent changes announced by contacts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1::ConsentState;
use muster_proto::events::v1::{ConsentChanged, ConsentChanges};
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;

/// `contacts.consent.changed`: a withdrawal of the general e-mail consent
/// suppresses the address; a later grant lifts a suppression that came from
/// consent (never a bounce's). A purpose's consent leaves the address as it is.
/// One message carries the changes of a call or of an import batch, applied
/// in one transaction.
pub struct ConsentProjection {
    pub pool: PgPool,
}

/// The last change of the general e-mail consent of one address in a message.
struct Change {
    person: Option<Uuid>,
    withdrawn: bool,
    time: DateTime<Utc>,
}

/// The changes of a message body, either form.
fn decode(message: &Incoming) -> Result<Vec<ConsentChanged>, HandleError> {
    let undecodable =
        |e: prost::DecodeError| HandleError::Permanent(anyhow::anyhow!("undecodable body: {e}"));
    match message.message_type.as_str() {
        // Published before changes travelled together.
        "muster.events.v1.ConsentChanged" => Ok(vec![
            ConsentChanged::decode(message.body.as_slice()).map_err(undecodable)?,
        ]),
        _ => Ok(ConsentChanges::decode(message.body.as_slice())
            .map_err(undecodable)?
            .changes),
    }
}

/// The last general e-mail change of each address, in the order of the
/// message: the ledger applied them in that order, so the last one holds.
fn last_per_address(changes: Vec<ConsentChanged>) -> HashMap<String, Change> {
    let mut last = HashMap::new();
    for event in changes {
        if event.channel != "email" || !event.purpose.is_empty() || event.email.trim().is_empty() {
            continue;
        }
        let withdrawn = match ConsentState::try_from(event.state) {
            Ok(ConsentState::Withdrawn) => true,
            Ok(ConsentState::Granted) => false,
            _ => continue,
        };
        let time = event
            .time
            .as_ref()
            .and_then(muster_runtime::time::from_proto)
            .unwrap_or_else(Utc::now);
        let change = Change {
            person: Uuid::parse_str(&event.person_id).ok(),
            withdrawn,
            time,
        };
        last.insert(event.email.trim().to_lowercase(), change);
    }
    last
}

impl Handler for ConsentProjection {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let changes = last_per_address(decode(&message)?);
        if changes.is_empty() {
            return Ok(());
        }
        let Some(mut tx) =
            consumer::begin_once(&self.pool, "messaging.consent", message.message_id).await?
        else {
            return Ok(());
        };
        let (withdrawn, granted): (Vec<_>, Vec<_>) =
            changes.into_iter().partition(|(_, c)| c.withdrawn);
        if !withdrawn.is_empty() {
            let keys: Vec<&str> = withdrawn.iter().map(|(k, _)| k.as_str()).collect();
            let people: Vec<Option<Uuid>> = withdrawn.iter().map(|(_, c)| c.person).collect();
            let times: Vec<DateTime<Utc>> = withdrawn.iter().map(|(_, c)| c.time).collect();
            sqlx::query(
                "INSERT INTO suppressions (tenant_id, email_key, person_id, reason, created_at)
                 SELECT $1, k, p, 'consent-withdrawn', t
                 FROM UNNEST($2::text[], $3::uuid[], $4::timestamptz[]) AS u(k, p, t)
                 ON CONFLICT (tenant_id, email_key) DO NOTHING",
            )
            .bind(message.tenant_id)
            .bind(&keys)
            .bind(&people)
            .bind(&times)
            .execute(&mut *tx)
            .await?;
        }
        if !granted.is_empty() {
            let keys: Vec<&str> = granted.iter().map(|(k, _)| k.as_str()).collect();
            let times: Vec<DateTime<Utc>> = granted.iter().map(|(_, c)| c.time).collect();
            sqlx::query(
                "DELETE FROM suppressions s
                 USING UNNEST($2::text[], $3::timestamptz[]) AS u(k, t)
                 WHERE s.tenant_id = $1 AND s.email_key = u.k
                   AND s.reason IN ('consent-withdrawn', 'unsubscribed') AND s.created_at < u.t",
            )
            .bind(message.tenant_id)
            .bind(&keys)
            .bind(&times)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(email: &str, state: ConsentState, purpose: &str) -> ConsentChanged {
        ConsentChanged {
            person_id: Uuid::now_v7().to_string(),
            email: email.into(),
            channel: "email".into(),
            state: state as i32,
            purpose: purpose.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_last_general_email_change_of_each_address_holds() {
        let changes = vec![
            change("Ada@Example.org", ConsentState::Withdrawn, ""),
            change("ada@example.org ", ConsentState::Granted, ""),
            change("bob@example.org", ConsentState::Granted, ""),
            change("bob@example.org", ConsentState::Withdrawn, ""),
            change("cy@example.org", ConsentState::Withdrawn, "newsletter"),
            change("dee@example.org", ConsentState::Pending, ""),
            change(" ", ConsentState::Withdrawn, ""),
        ];
        let last = last_per_address(changes);
        assert_eq!(
            last.len(),
            2,
            "purposes, pending and blank addresses change nothing"
        );
        assert!(!last["ada@example.org"].withdrawn);
        assert!(last["bob@example.org"].withdrawn);
    }

    #[test]
    fn both_forms_of_the_body_are_read() {
        let single = change("ada@example.org", ConsentState::Withdrawn, "");
        let message = |message_type: &str, body: Vec<u8>| Incoming {
            message_id: Uuid::now_v7(),
            tenant_id: muster_runtime::TenantId::new(),
            message_type: message_type.into(),
            routing_key: "contacts.consent.changed".into(),
            body,
        };
        let old = message("muster.events.v1.ConsentChanged", single.encode_to_vec());
        assert_eq!(decode(&old).unwrap(), vec![single.clone()]);
        let body = ConsentChanges {
            changes: vec![single.clone(), single.clone()],
        };
        let new = message("muster.events.v1.ConsentChanges", body.encode_to_vec());
        assert_eq!(decode(&new).unwrap().len(), 2);
        let broken = message("muster.events.v1.ConsentChanges", vec![0xff, 0xff]);
        assert!(matches!(decode(&broken), Err(HandleError::Permanent(_))));
    }
}
