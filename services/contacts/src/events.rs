//! What contacts announces on the bus, always through the outbox, and the
//! consent changes that produce most of it.

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1::ConsentState;
use muster_proto::events::v1::{ConsentChanged, PersonChanged};
use muster_runtime::TenantId;
use muster_runtime::outbox::{Destination, Outgoing};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

/// People this import or call created.
pub const PERSON_CREATED: &str = "contacts.person.created";
/// People an import merged new values into.
pub const PERSON_UPDATED: &str = "contacts.person.updated";

/// A person event ([`PERSON_CREATED`] or [`PERSON_UPDATED`]).
pub fn person_changed(tenant_id: TenantId, routing_key: &'static str) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key,
        message_type: "muster.events.v1.PersonChanged",
    }
}

/// Bodies of person events for `ids`.
pub fn person_bodies(ids: &[Uuid]) -> Vec<Vec<u8>> {
    ids.iter()
        .map(|id| {
            PersonChanged {
                person_id: id.to_string(),
            }
            .encode_to_vec()
        })
        .collect()
}

/// A person erased here; every service erases its copy and confirms.
pub const PERSON_ERASED: &str = "contacts.person.erased";

/// A [`PERSON_ERASED`] event.
pub fn person_erased(tenant_id: TenantId) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key: PERSON_ERASED,
        message_type: "muster.events.v1.PersonErased",
    }
}

/// A `contacts.consent.changed` event.
pub fn consent_changed(tenant_id: TenantId) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key: "contacts.consent.changed",
        message_type: "muster.events.v1.ConsentChanged",
    }
}

/// Two people found to be one; every service re-points the merged id's rows.
pub const PERSON_MERGED: &str = "contacts.person.merged";

/// A [`PERSON_MERGED`] event.
pub fn person_merged(tenant_id: TenantId) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key: PERSON_MERGED,
        message_type: "muster.events.v1.PersonMerged",
    }
}

/// A change to e-mail consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Applies only where no consent state exists yet: never re-subscribes.
    Grant,
    /// Always applies.
    Withdraw,
}

const SET_CONSENT: &str = "
    WITH s AS (
        SELECT * FROM UNNEST($2::uuid[], $3::timestamptz[], $4::text[])
            AS s(person_id, at, evidence)
    ), changed AS (
        UPDATE people p SET email_consent = $6, email_consent_at = s.at,
            email_consent_source = $5, email_consent_evidence = s.evidence::jsonb,
            updated_at = now()
        FROM s
        WHERE p.tenant_id = $1 AND p.id = s.person_id AND {condition}
        RETURNING p.id, p.email, s.at, s.evidence
    ), logged AS (
        INSERT INTO consent_events
            (tenant_id, person_id, channel, state, occurred_at, source, evidence)
        SELECT $1, id, 'email', $6, at, $5, evidence::jsonb FROM changed
    )
    SELECT id, email, at FROM changed";

/// Sets the e-mail consent of `people` (with the time and evidence of each
/// statement), logs each change in the ledger and announces it. Returns how
/// many people changed state.
pub async fn set_email_consent(
    tx: &mut PgConnection,
    tenant: TenantId,
    people: &[Uuid],
    times: &[DateTime<Utc>],
    evidence: &[String],
    change: Change,
    source: &str,
) -> anyhow::Result<u64> {
    let (condition, state, proto_state) = match change {
        Change::Grant => ("p.email_consent = 'none'", "granted", ConsentState::Granted),
        Change::Withdraw => (
            "p.email_consent <> 'withdrawn'",
            "withdrawn",
            ConsentState::Withdrawn,
        ),
    };
    let changed: Vec<(Uuid, Option<String>, DateTime<Utc>)> = sqlx::query_as(sqlx::AssertSqlSafe(
        SET_CONSENT.replace("{condition}", condition),
    ))
    .bind(tenant)
    .bind(people)
    .bind(times)
    .bind(evidence)
    .bind(source)
    .bind(state)
    .fetch_all(&mut *tx)
    .await?;

    let bodies = changed
        .iter()
        .map(|(id, email, at)| {
            ConsentChanged {
                person_id: id.to_string(),
                email: email.clone().unwrap_or_default(),
                channel: "email".into(),
                state: proto_state as i32,
                time: Some(muster_runtime::time::to_proto(*at)),
                source: source.to_owned(),
            }
            .encode_to_vec()
        })
        .collect();
    consent_changed(tenant).enqueue(tx, bodies).await?;
    Ok(changed.len() as u64)
}
