//! One record per person: merging two people into one, audited and
//! announced on the bus, and (in [`duplicates`]) finding the people that
//! may be one.
//!
//! A merge deletes the merged person's row, as erasure does, so that every
//! query forgets them without learning a "merged" state; `merges` keeps the
//! record as it was and lets the merged id keep answering with the survivor.

pub mod addresses;
pub mod duplicates;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use muster_proto::events::v1::PersonMerged;
use muster_runtime::time::to_proto;
use muster_runtime::{ApiError, TenantId};
use prost::Message;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::consent::store::Statement;
use crate::consent::{self, Channel, Kind, LegalBasis, State};
use crate::events;

/// What one merge did.
#[derive(Debug, Clone)]
pub struct Merged {
    pub id: Uuid,
    pub survivor: Uuid,
    pub merged: Uuid,
    pub reason: String,
    pub merged_by: String,
    pub at: DateTime<Utc>,
}

/// Merges `merged` into `survivor` in one transaction; see [`merge_in`].
pub async fn merge(
    pool: &PgPool,
    tenant: TenantId,
    survivor: Uuid,
    merged: Uuid,
    reason: &str,
    merged_by: &str,
) -> Result<Merged, ApiError> {
    let mut tx = pool.begin().await?;
    let done = merge_in(&mut tx, tenant, survivor, merged, reason, merged_by).await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant, survivor_id = %survivor, merged_id = %merged,
        merge_id = %done.id, merged_by, "people merged");
    Ok(done)
}

/// Merges `merged` into `survivor` inside `tx`: the survivor keeps its
/// values and fills the empty ones from the other; e-mails, phones, tags and
/// external ids are united; the consent ledgers are united and the state
/// recomputed ([`merge_consent`]); the merged row is deleted, the merge
/// audited with a snapshot of it and `contacts.person.merged` enqueued.
///
/// Both rows are locked in id order first, so two merges of the same people
/// run one after the other and the second finds the merged one gone.
pub async fn merge_in(
    tx: &mut PgConnection,
    tenant: TenantId,
    survivor: Uuid,
    merged: Uuid,
    reason: &str,
    merged_by: &str,
) -> Result<Merged, ApiError> {
    if survivor == merged {
        return Err(ApiError::invalid(
            "merged_id",
            "a person cannot be merged with themselves; name two different people",
        ));
    }
    let locked: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM people WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE",
    )
    .bind(tenant)
    .bind([survivor, merged])
    .fetch_all(&mut *tx)
    .await?;
    for (id, field, other) in [
        (survivor, "survivor_id", merged),
        (merged, "merged_id", survivor),
    ] {
        if !locked.contains(&id) {
            return Err(missing(&mut *tx, tenant, id, field, other).await?);
        }
    }

    let snapshot: serde_json::Value = sqlx::query_scalar(
        "SELECT (to_jsonb(p) - 'name_key') || jsonb_build_object(
            'other_emails', ARRAY(SELECT email FROM person_emails
                                  WHERE person_id = p.id ORDER BY added_at, email_key),
            'other_phones', ARRAY(SELECT phone FROM person_phones
                                  WHERE person_id = p.id ORDER BY added_at, phone))
         FROM people p WHERE p.tenant_id = $1 AND p.id = $2",
    )
    .bind(tenant)
    .bind(merged)
    .fetch_one(&mut *tx)
    .await?;
    let id = Uuid::now_v7();
    let at = Utc::now();

    move_addresses(&mut *tx, tenant, survivor, merged).await?;
    merge_consent(&mut *tx, tenant, survivor, merged, id).await?;
    crate::projections::merge(&mut *tx, tenant, survivor, merged).await?;
    sqlx::query("DELETE FROM people WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(merged)
        .execute(&mut *tx)
        .await?;
    merge_fields(&mut *tx, tenant, survivor, &snapshot).await?;
    keep_primaries(&mut *tx, tenant, survivor, &snapshot).await?;
    settle_duplicates(&mut *tx, tenant, survivor, merged, merged_by).await?;

    sqlx::query(
        "INSERT INTO merges (id, tenant_id, survivor_id, merged_id, reason, merged_by, snapshot,
                             merged_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .bind(reason)
    .bind(merged_by)
    .bind(&snapshot)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let body = PersonMerged {
        survivor_id: survivor.to_string(),
        merged_id: merged.to_string(),
        merge_id: id.to_string(),
        time: Some(to_proto(at)),
    }
    .encode_to_vec();
    events::person_merged(tenant)
        .enqueue_one(&mut *tx, body)
        .await?;
    events::person_changed(tenant, events::PERSON_UPDATED)
        .enqueue(&mut *tx, events::person_bodies(&[survivor]))
        .await?;

    Ok(Merged {
        id,
        survivor,
        merged,
        reason: reason.to_owned(),
        merged_by: merged_by.to_owned(),
        at,
    })
}

/// Why `id` could not be locked: merged already, erased, or never known.
/// `other` is the request's other person.
async fn missing(
    tx: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    field: &str,
    other: Uuid,
) -> Result<ApiError, ApiError> {
    if let Some(into) = survivor_of(&mut *tx, tenant, id).await? {
        let next = match into == other {
            true => "they are one person already, nothing to merge".to_owned(),
            false => format!("merge {into} instead"),
        };
        return Ok(ApiError::precondition(format!(
            "{field}: person {id} was already merged into {into}; {next}"
        )));
    }
    let erased: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM erasure_requests WHERE tenant_id = $1 AND person_id = $2)",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(match erased {
        true => ApiError::precondition(format!(
            "{field}: person {id} was erased at their request and cannot be merged"
        )),
        false => ApiError::not_found(format!("{field}: person {id}")),
    })
}

/// The person that `id` was merged into, following later merges, if any.
pub async fn survivor_of(
    tx: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "WITH RECURSIVE chain (id, depth) AS (
            SELECT survivor_id, 1 FROM merges WHERE tenant_id = $1 AND merged_id = $2
            UNION ALL
            SELECT m.survivor_id, c.depth + 1 FROM merges m JOIN chain c ON m.merged_id = c.id
            WHERE m.tenant_id = $1 AND c.depth < 1000
         )
         SELECT id FROM chain ORDER BY depth DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
}

/// `merged (id)`: the person `$2` of tenant `$1` and everyone merged into
/// them, directly or through later merges (Hugo into Karim, then Karim into
/// Inès: all three for Inès). A statement's opening `WITH`.
pub const MERGED_INTO: &str = "WITH RECURSIVE merged (id) AS (
        SELECT $2::uuid
        UNION
        SELECT m.merged_id FROM merges m JOIN merged ON m.survivor_id = merged.id
        WHERE m.tenant_id = $1
    )";

/// Empties the snapshots of the people merged, directly or through later
/// merges, into `person`, who is being erased: the audit keeps who merged
/// whom and when, not the merged records.
pub async fn forget_snapshots(
    tx: &mut PgConnection,
    tenant: TenantId,
    person: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{MERGED_INTO}
         UPDATE merges SET snapshot = jsonb_build_object('erased', true)
         WHERE tenant_id = $1 AND survivor_id IN (SELECT id FROM merged)"
    )))
    .bind(tenant)
    .bind(person)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Gives the merged person's secondary addresses and numbers to the
/// survivor, before the merged row (and, by cascade, what is left) goes.
async fn move_addresses(
    tx: &mut PgConnection,
    tenant: TenantId,
    survivor: Uuid,
    merged: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE person_emails SET person_id = $2 WHERE tenant_id = $1 AND person_id = $3")
        .bind(tenant)
        .bind(survivor)
        .bind(merged)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO person_phones (tenant_id, person_id, phone, added_at)
         SELECT tenant_id, $2, phone, added_at FROM person_phones
         WHERE tenant_id = $1 AND person_id = $3
         ON CONFLICT (person_id, phone) DO NOTHING",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The SQL condition under which the address of the record aliased `kept`
/// gives way, as a whole, to the one of `other`: it has none, or it is the
/// same place told less fully — no street, where `other` has one in the same
/// postal code and commune (`69007 Lyon` against `4 rue Béchevelin, 69007
/// Lyon`), or no street and no commune, where `other` places the person in a
/// commune of the same postal code (a bare `56120` against `56120 Guégon`).
pub(crate) fn address_replaced(kept: &str, other: &str) -> String {
    format!(
        "(({kept}.address_line1 IS NULL AND {kept}.postal_code IS NULL AND {kept}.city IS NULL) \
         OR ({kept}.address_line1 IS NULL AND {kept}.commune_insee IS NULL \
             AND {other}.commune_insee IS NOT NULL \
             AND ({kept}.postal_code IS NULL OR {kept}.postal_code = {other}.postal_code)) \
         OR ({kept}.address_line1 IS NULL AND {other}.address_line1 IS NOT NULL \
             AND {kept}.postal_code = {other}.postal_code \
             AND ({kept}.commune_insee IS NULL \
                  OR {kept}.commune_insee = {other}.commune_insee)))"
    )
}

/// The one place where the values of two records become one: the
/// survivor's values stay, its empty ones are filled from the merged record
/// (`snapshot`, a `people` row as JSON), the address as a whole (see
/// [`address_replaced`]); tags and external ids are united (the survivor's
/// id wins within one system).
async fn merge_fields(
    tx: &mut PgConnection,
    tenant: TenantId,
    survivor: Uuid,
    snapshot: &serde_json::Value,
) -> sqlx::Result<()> {
    let replaced = address_replaced("s", "m");
    let address = [
        "address_line1",
        "postal_code",
        "city",
        "country",
        "departement",
        "commune_insee",
        "region",
        "time_zone",
    ]
    .map(|c| format!("{c} = CASE WHEN {replaced} THEN m.{c} ELSE s.{c} END"))
    .join(",\n            ");
    let sql = format!(
        "UPDATE people s SET
            first_name = COALESCE(s.first_name, m.first_name),
            last_name = COALESCE(s.last_name, m.last_name),
            email = CASE WHEN s.email_key IS NULL THEN m.email ELSE s.email END,
            email_key = COALESCE(s.email_key, m.email_key),
            phone = COALESCE(s.phone, m.phone),
            {address},
            birth_date = COALESCE(s.birth_date, m.birth_date),
            tags = s.tags || ARRAY(SELECT t FROM unnest(m.tags) AS t WHERE t <> ALL(s.tags)),
            external_ids = m.external_ids || s.external_ids,
            custom_fields = m.custom_fields || s.custom_fields,
            created_at = LEAST(s.created_at, m.created_at),
            updated_at = now()
         FROM jsonb_populate_record(NULL::people, $3) m
         WHERE s.tenant_id = $1 AND s.id = $2"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(survivor)
        .bind(snapshot)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Keeps the merged person's primary address and number as the survivor's
/// secondary ones when the survivor kept its own, and drops a secondary
/// number that is now the primary one.
async fn keep_primaries(
    tx: &mut PgConnection,
    tenant: TenantId,
    survivor: Uuid,
    snapshot: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO person_emails (tenant_id, email_key, email, person_id)
         SELECT $1, m.email_key, m.email, s.id
         FROM jsonb_populate_record(NULL::people, $3) m, people s
         WHERE s.tenant_id = $1 AND s.id = $2 AND m.email_key IS NOT NULL
           AND m.email_key <> s.email_key",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(snapshot)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO person_phones (tenant_id, person_id, phone)
         SELECT $1, s.id, m.phone
         FROM jsonb_populate_record(NULL::people, $3) m, people s
         WHERE s.tenant_id = $1 AND s.id = $2 AND m.phone IS NOT NULL AND m.phone <> s.phone
         ON CONFLICT (person_id, phone) DO NOTHING",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(snapshot)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM person_phones n USING people s
         WHERE s.tenant_id = $1 AND s.id = $2 AND n.person_id = s.id AND n.phone = s.phone",
    )
    .bind(tenant)
    .bind(survivor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One current consent state of the merged person, as `consents` holds it.
#[derive(sqlx::FromRow)]
struct HeldConsent {
    channel: String,
    purpose: String,
    state: String,
    legal_basis: String,
    source: String,
    notice: String,
    occurred_at: DateTime<Utc>,
}

/// Unites the consent ledgers of a merge: the merged person's statements
/// now belong to the survivor, and each of their withdrawals (per channel and
/// purpose) is recorded on the survivor through the ledger
/// ([`consent::store::record`]), with the merge as source and the
/// statement's own source in the evidence, so that it is logged, mirrored and
/// announced like any other (messaging suppresses the address).
///
/// Grants are not carried over: the merged person gave them for their own
/// address or number, which the survivor keeps only as a secondary one, and
/// two records merged by mistake must not let one person's consent reach the
/// other. The survivor's own states stand; its pending requests wait for their
/// own confirmation. Runs before the merged row is deleted, which deletes its
/// current states.
async fn merge_consent(
    tx: &mut PgConnection,
    tenant: TenantId,
    survivor: Uuid,
    merged: Uuid,
    merge_id: Uuid,
) -> anyhow::Result<()> {
    let held = |person: Uuid| {
        sqlx::query_as::<_, HeldConsent>(
            "SELECT channel, purpose, state, legal_basis, source, notice, occurred_at
             FROM consents WHERE tenant_id = $1 AND person_id = $2
             ORDER BY channel, purpose",
        )
        .bind(tenant)
        .bind(person)
    };
    let theirs = held(merged).fetch_all(&mut *tx).await?;
    let ours: HashMap<(String, String), State> = held(survivor)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .filter_map(|c| Some(((c.channel, c.purpose), State::parse(&c.state)?)))
        .collect();
    sqlx::query("UPDATE consent_events SET person_id = $2 WHERE tenant_id = $1 AND person_id = $3")
        .bind(tenant)
        .bind(survivor)
        .bind(merged)
        .execute(&mut *tx)
        .await?;

    let mut statements = Vec::new();
    for held in theirs {
        let (Some(channel), Some(purpose), Some(state), Some(legal_basis)) = (
            Channel::parse(&held.channel),
            consent::purpose(&held.purpose),
            State::parse(&held.state),
            LegalBasis::parse(&held.legal_basis),
        ) else {
            continue;
        };
        let kept = ours
            .get(&(held.channel.clone(), held.purpose.clone()))
            .copied();
        if state != State::Withdrawn || kept == Some(State::Withdrawn) {
            continue;
        }
        statements.push(Statement {
            person: survivor,
            channel,
            purpose,
            kind: Kind::Withdraw,
            legal_basis,
            source: format!("merge:{merge_id}"),
            notice: held.notice,
            occurred_at: held.occurred_at,
            evidence: serde_json::json!({
                "merged_id": merged.to_string(),
                "source": held.source,
            }),
        });
    }
    consent::store::record(tx, tenant, &statements).await?;
    Ok(())
}

/// Closes the pair of a merge if it was listed, and forgets the other open
/// pairs of the merged person: detection lists them again on the survivor.
async fn settle_duplicates(
    tx: &mut PgConnection,
    tenant: TenantId,
    survivor: Uuid,
    merged: Uuid,
    merged_by: &str,
) -> sqlx::Result<()> {
    let (a, b) = (survivor.min(merged), survivor.max(merged));
    sqlx::query(
        "UPDATE duplicates SET state = 'merged', decided_at = now(), decided_by = $4
         WHERE tenant_id = $1 AND person_a = $2 AND person_b = $3",
    )
    .bind(tenant)
    .bind(a)
    .bind(b)
    .bind(merged_by)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM duplicates
         WHERE tenant_id = $1 AND state = 'open' AND (person_a = $2 OR person_b = $2)",
    )
    .bind(tenant)
    .bind(merged)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
