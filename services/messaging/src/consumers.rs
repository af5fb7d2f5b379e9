//! The suppression projection: consent changes announced by contacts.

use std::collections::{HashMap, HashSet};

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
/// in one transaction. A change older in the ledger than the last one applied
/// to its address is ignored, whatever order the messages arrive in.
pub struct ConsentProjection {
    pub pool: PgPool,
}

/// The last change of the general e-mail consent of one address in a message.
struct Change {
    person: Option<Uuid>,
    withdrawn: bool,
    time: DateTime<Utc>,
    /// The change's place in the contacts ledger; 0 when the message
    /// predates it.
    sequence: i64,
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
            sequence: event.sequence,
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
        let newer = newer_than_applied(&mut tx, message.tenant_id, &changes).await?;
        let (withdrawn, granted): (Vec<_>, Vec<_>) = changes
            .into_iter()
            .filter(|(key, change)| change.sequence == 0 || newer.contains(key))
            .partition(|(_, c)| c.withdrawn);
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

/// The addresses whose change in `changes` is newer in the ledger than the
/// last one applied to them, now recorded as the last.
async fn newer_than_applied(
    tx: &mut sqlx::PgConnection,
    tenant: muster_runtime::TenantId,
    changes: &HashMap<String, Change>,
) -> sqlx::Result<HashSet<String>> {
    let (keys, sequences): (Vec<&str>, Vec<i64>) = changes
        .iter()
        .filter(|(_, c)| c.sequence > 0)
        .map(|(key, c)| (key.as_str(), c.sequence))
        .unzip();
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let advanced: Vec<String> = sqlx::query_scalar(
        "INSERT INTO consent_versions (tenant_id, email_key, sequence)
         SELECT $1, k, s FROM UNNEST($2::text[], $3::bigint[]) AS u(k, s)
         ON CONFLICT (tenant_id, email_key) DO UPDATE SET sequence = EXCLUDED.sequence
            WHERE consent_versions.sequence < EXCLUDED.sequence
         RETURNING email_key",
    )
    .bind(tenant)
    .bind(&keys)
    .bind(&sequences)
    .fetch_all(&mut *tx)
    .await?;
    Ok(advanced.into_iter().collect())
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

    /// A message of changes, each (address, state, time as a day of March
    /// 2026, ledger sequence).
    fn changes(
        tenant: muster_runtime::TenantId,
        items: &[(&str, ConsentState, u32, i64)],
    ) -> Incoming {
        let changes = items
            .iter()
            .map(|&(email, state, day, sequence)| ConsentChanged {
                time: Some(muster_runtime::time::to_proto(
                    chrono::NaiveDate::from_ymd_opt(2026, 3, day)
                        .unwrap()
                        .and_hms_opt(10, 0, 0)
                        .unwrap()
                        .and_utc(),
                )),
                sequence,
                ..change(email, state, "")
            })
            .collect();
        let body = ConsentChanges { changes }.encode_to_vec();
        incoming(tenant, "muster.events.v1.ConsentChanges", body)
    }

    fn incoming(tenant: muster_runtime::TenantId, message_type: &str, body: Vec<u8>) -> Incoming {
        Incoming {
            message_id: Uuid::now_v7(),
            tenant_id: tenant,
            message_type: message_type.into(),
            routing_key: "contacts.consent.changed".into(),
            body,
        }
    }

    #[tokio::test]
    async fn an_older_change_arriving_late_never_undoes_a_newer_one() -> anyhow::Result<()> {
        use ConsentState::{Granted, Withdrawn};
        let settings = muster_testkit::fresh_database("consent_versions").await?;
        let pool = muster_runtime::db::connect(&settings).await?;
        muster_runtime::db::migrate(&pool, crate::MIGRATIONS).await?;
        let projection = ConsentProjection { pool: pool.clone() };
        let tenant = muster_runtime::TenantId::new();

        // Handled one message at a time, in this order. Ada: the file granted
        // early (a later date) and withdrew later (an earlier date): the
        // ledger's order holds, not the dates nor the order of handling. Bob
        // re-subscribed (confirmed) after withdrawing; the grant comes first.
        // Cy: a message from before sequences still applies by its dates.
        let arrivals = [
            ("ada@example.org", Withdrawn, 1, 20),
            ("ada@example.org", Granted, 9, 10),
            ("bob@example.org", Granted, 9, 40),
            ("bob@example.org", Withdrawn, 1, 30),
            ("cy@example.org", Withdrawn, 1, 0),
        ];
        for arrival in arrivals {
            projection.handle(changes(tenant, &[arrival])).await?;
        }

        let suppressed: Vec<String> = sqlx::query_scalar(
            "SELECT email_key FROM suppressions WHERE tenant_id = $1 ORDER BY email_key",
        )
        .bind(tenant)
        .fetch_all(&pool)
        .await?;
        pool.close().await;
        muster_testkit::drop_database(&settings).await?;
        assert_eq!(suppressed, ["ada@example.org", "cy@example.org"]);
        Ok(())
    }

    #[test]
    fn both_forms_of_the_body_are_read() {
        let single = change("ada@example.org", ConsentState::Withdrawn, "");
        let message = |message_type: &str, body: Vec<u8>| {
            incoming(muster_runtime::TenantId::new(), message_type, body)
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
