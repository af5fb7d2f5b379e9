//! The ledger in PostgreSQL: [`record`] is the one writer of `consent_events`
//! statements, of the derived `consents` table and of its mirror in
//! `people.email_consent*`; the readers of the current state, the history
//! and the policy.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as pb;
use muster_proto::events::v1::{ConsentChanged, ConsentChanges, ConsentConfirmationRequested};
use muster_runtime::outbox::{Destination, Outgoing};
use muster_runtime::time::to_proto;
use muster_runtime::{ApiError, TenantId};
use prost::Message;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Channel, Kind, LegalBasis, State, next};

/// A statement about one person's consent, before the ledger's rules apply.
#[derive(Debug, Clone)]
pub struct Statement {
    pub person: Uuid,
    pub channel: Channel,
    /// One of [`super::PURPOSES`].
    pub purpose: &'static str,
    pub kind: Kind,
    pub legal_basis: LegalBasis,
    pub source: String,
    pub notice: String,
    pub occurred_at: DateTime<Utc>,
    /// A JSON object.
    pub evidence: serde_json::Value,
}

/// How the confirmation e-mails that pending statements ask for are headed:
/// the organization they name and the language they are written in (a
/// [`muster_runtime::language::Language`] tag). Empty fields leave messaging
/// to its defaults: no name, English.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Letterhead {
    pub organization: String,
    pub language: String,
}

/// A statement that changed a state: its index in the call and the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub index: usize,
    pub state: State,
}

type Key = (Uuid, Channel, &'static str);

/// `people.email_consent`, `email_consent_at` and `email_consent_source`.
type Mirror = (String, Option<DateTime<Utc>>, Option<String>);

#[derive(sqlx::FromRow)]
struct PersonRow {
    id: Uuid,
    email: Option<String>,
    first_name: Option<String>,
    email_consent: String,
    email_consent_at: Option<DateTime<Utc>>,
    email_consent_source: Option<String>,
}

fn consent_changed(tenant_id: TenantId) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key: "contacts.consent.changed",
        message_type: "muster.events.v1.ConsentChanges",
    }
}

/// Applies `statements` in order under the ledger's rules ([`next`]): logs
/// each one that changes a state, keeps `consents` (and, for the general
/// e-mail consent, `people.email_consent*`) equal to the last, and
/// announces the changes in one message; a new pending e-mail consent also asks messaging
/// to send its confirmation link. Statements about unknown (or erased) people are
/// skipped. The people rows are locked, so concurrent statements about a
/// person apply one after the other.
pub async fn record(
    tx: &mut PgConnection,
    tenant: TenantId,
    statements: &[Statement],
) -> anyhow::Result<Vec<Applied>> {
    record_under(tx, tenant, statements, Locks::Take, &Letterhead::default()).await
}

/// [`record`] for statements whose confirmation e-mail, if one is asked,
/// is headed by `letterhead` (a form subscription and an API statement
/// come with the organization's name and a language).
pub async fn record_headed(
    tx: &mut PgConnection,
    tenant: TenantId,
    statements: &[Statement],
    letterhead: &Letterhead,
) -> anyhow::Result<Vec<Applied>> {
    record_under(tx, tenant, statements, Locks::Take, letterhead).await
}

/// [`record`] for a transaction that has itself inserted or updated every
/// person of `statements` (an import batch): those rows are locked until it
/// ends, and locking them again would write each one once more.
pub async fn record_written(
    tx: &mut PgConnection,
    tenant: TenantId,
    statements: &[Statement],
) -> anyhow::Result<Vec<Applied>> {
    record_under(tx, tenant, statements, Locks::Held, &Letterhead::default()).await
}

/// Whether [`record_under`] locks the people rows or the caller holds them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Locks {
    Take,
    Held,
}

async fn record_under(
    tx: &mut PgConnection,
    tenant: TenantId,
    statements: &[Statement],
    locks: Locks,
    letterhead: &Letterhead,
) -> anyhow::Result<Vec<Applied>> {
    let mut ids: Vec<Uuid> = statements.iter().map(|s| s.person).collect();
    ids.sort_unstable();
    ids.dedup();
    let lock = match locks {
        Locks::Take => " FOR UPDATE",
        Locks::Held => "",
    };
    let rows: Vec<PersonRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, email, first_name, email_consent, email_consent_at, email_consent_source
         FROM people WHERE tenant_id = $1 AND id = ANY($2)
         ORDER BY id{lock}"
    )))
    .bind(tenant)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut mirrors: HashMap<Uuid, Mirror> = HashMap::with_capacity(rows.len());
    let known: HashMap<Uuid, (String, String)> = rows
        .into_iter()
        .map(|row| {
            let mirror = (
                row.email_consent,
                row.email_consent_at,
                row.email_consent_source,
            );
            mirrors.insert(row.id, mirror);
            let names = (
                row.email.unwrap_or_default(),
                row.first_name.unwrap_or_default(),
            );
            (row.id, names)
        })
        .collect();
    let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT person_id, channel, purpose, state FROM consents
         WHERE tenant_id = $1 AND person_id = ANY($2)",
    )
    .bind(tenant)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut current: HashMap<(Uuid, String, String), State> = rows
        .into_iter()
        .filter_map(|(id, channel, purpose, state)| {
            Some(((id, channel, purpose), State::parse(&state)?))
        })
        .collect();

    let mut applied = Vec::new();
    let mut last: HashMap<Key, usize> = HashMap::new();
    for (index, s) in statements.iter().enumerate() {
        if !known.contains_key(&s.person) {
            continue;
        }
        let key = (
            s.person,
            s.channel.as_str().to_owned(),
            s.purpose.to_owned(),
        );
        let Some(state) = next(current.get(&key).copied(), s.kind) else {
            continue;
        };
        current.insert(key, state);
        last.insert((s.person, s.channel, s.purpose), applied.len());
        applied.push(Applied { index, state });
    }
    if applied.is_empty() {
        return Ok(applied);
    }

    let sequences = write_ledger(tx, tenant, statements, &applied).await?;
    let mut finals: Vec<Applied> = last.values().map(|&i| applied[i]).collect();
    finals.sort_unstable_by_key(|a| a.index);
    // The mirror is written only where it differs: an import's new people
    // were written with it.
    let mirrored: Vec<Applied> = finals
        .iter()
        .filter(|a| {
            let s = &statements[a.index];
            s.channel == Channel::Email
                && s.purpose.is_empty()
                && mirrors.get(&s.person)
                    != Some(&(
                        a.state.as_str().to_owned(),
                        Some(s.occurred_at),
                        Some(s.source.clone()),
                    ))
        })
        .copied()
        .collect();
    write_current(tx, tenant, statements, &finals, &mirrored).await?;

    let changes = applied
        .iter()
        .zip(sequences)
        .map(|(a, sequence)| {
            let s = &statements[a.index];
            ConsentChanged {
                person_id: s.person.to_string(),
                email: known[&s.person].0.clone(),
                channel: s.channel.as_str().to_owned(),
                state: a.state.to_proto() as i32,
                time: Some(to_proto(s.occurred_at)),
                source: s.source.clone(),
                purpose: s.purpose.to_owned(),
                legal_basis: s.legal_basis.to_proto() as i32,
                sequence,
            }
        })
        .collect();
    let body = ConsentChanges { changes }.encode_to_vec();
    consent_changed(tenant).enqueue(tx, vec![body]).await?;

    let requests = applied
        .iter()
        .filter(|a| a.state == State::Pending)
        .map(|a| &statements[a.index])
        .filter(|s| s.channel == Channel::Email && !known[&s.person].0.is_empty())
        .map(|s| {
            let (email, first_name) = &known[&s.person];
            ConsentConfirmationRequested {
                person_id: s.person.to_string(),
                email: email.clone(),
                first_name: first_name.clone(),
                purpose: s.purpose.to_owned(),
                notice: s.notice.clone(),
                time: Some(to_proto(s.occurred_at)),
                organization_name: letterhead.organization.clone(),
                language: letterhead.language.clone(),
            }
            .encode_to_vec()
        })
        .collect::<Vec<_>>();
    if !requests.is_empty() {
        confirmation_requested(tenant).enqueue(tx, requests).await?;
    }
    Ok(applied)
}

/// Asks messaging to e-mail the person the link that confirms a pending consent.
pub const CONFIRMATION_REQUESTED: &str = "contacts.consent.confirmation_requested";

fn confirmation_requested(tenant_id: TenantId) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key: CONFIRMATION_REQUESTED,
        message_type: "muster.events.v1.ConsentConfirmationRequested",
    }
}

/// The columns of `applied` statements, in the order of the UNNEST below.
struct Columns {
    people: Vec<Uuid>,
    channels: Vec<&'static str>,
    purposes: Vec<&'static str>,
    states: Vec<&'static str>,
    bases: Vec<&'static str>,
    sources: Vec<String>,
    notices: Vec<String>,
    times: Vec<DateTime<Utc>>,
    evidence: Vec<String>,
}

impl Columns {
    fn of(statements: &[Statement], applied: &[Applied]) -> Self {
        let mut c = Columns {
            people: Vec::new(),
            channels: Vec::new(),
            purposes: Vec::new(),
            states: Vec::new(),
            bases: Vec::new(),
            sources: Vec::new(),
            notices: Vec::new(),
            times: Vec::new(),
            evidence: Vec::new(),
        };
        for a in applied {
            let s = &statements[a.index];
            c.people.push(s.person);
            c.channels.push(s.channel.as_str());
            c.purposes.push(s.purpose);
            c.states.push(a.state.as_str());
            c.bases.push(s.legal_basis.as_str());
            c.sources.push(s.source.clone());
            c.notices.push(s.notice.clone());
            c.times.push(s.occurred_at);
            c.evidence.push(s.evidence.to_string());
        }
        c
    }

    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.people)
            .bind(&self.channels)
            .bind(&self.purposes)
            .bind(&self.states)
            .bind(&self.bases)
            .bind(&self.sources)
            .bind(&self.notices)
            .bind(&self.times)
            .bind(&self.evidence)
    }
}

const STATEMENTS: &str = "UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::timestamptz[], $10::text[])
    AS s(person_id, channel, purpose, state, legal_basis, source, notice, occurred_at, evidence)";

/// Appends the `applied` statements to the ledger; returns their ids, in
/// their order (the ids are drawn row by row as the statements are inserted).
async fn write_ledger(
    tx: &mut PgConnection,
    tenant: TenantId,
    statements: &[Statement],
    applied: &[Applied],
) -> sqlx::Result<Vec<i64>> {
    let columns = Columns::of(statements, applied);
    let sql = format!(
        "INSERT INTO consent_events (tenant_id, person_id, channel, purpose, state, legal_basis,
                                     source, notice, occurred_at, evidence)
         SELECT $1, person_id, channel, purpose, state, legal_basis, source, notice, occurred_at,
                evidence::jsonb
         FROM {STATEMENTS}
         RETURNING id"
    );
    let rows = columns
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant))
        .fetch_all(&mut *tx)
        .await?;
    let mut ids = rows
        .iter()
        .map(|row| sqlx::Row::try_get::<i64, _>(row, 0))
        .collect::<sqlx::Result<Vec<i64>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// Writes the last state of each key (one statement per key in `finals`),
/// and copies the general e-mail ones in `mirrored` to the people.
async fn write_current(
    tx: &mut PgConnection,
    tenant: TenantId,
    statements: &[Statement],
    finals: &[Applied],
    mirrored: &[Applied],
) -> sqlx::Result<()> {
    let columns = Columns::of(statements, finals);
    let sql = format!(
        "INSERT INTO consents (tenant_id, person_id, channel, purpose, state, legal_basis,
                               source, notice, occurred_at, evidence)
         SELECT $1, person_id, channel, purpose, state, legal_basis, source, notice, occurred_at,
                evidence::jsonb
         FROM {STATEMENTS}
         ON CONFLICT (tenant_id, person_id, channel, purpose) DO UPDATE SET
            state = EXCLUDED.state, legal_basis = EXCLUDED.legal_basis,
            source = EXCLUDED.source, notice = EXCLUDED.notice,
            occurred_at = EXCLUDED.occurred_at, evidence = EXCLUDED.evidence,
            updated_at = now()"
    );
    columns
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant))
        .execute(&mut *tx)
        .await?;

    if mirrored.is_empty() {
        return Ok(());
    }
    // `p.id = ANY` lets the planner find the people by their key: joined on
    // the UNNEST alone, an organization without statistics yet (its first
    // import) got a nested loop over all its people and every statement.
    let columns = Columns::of(statements, mirrored);
    let sql = format!(
        "UPDATE people p SET email_consent = s.state, email_consent_at = s.occurred_at,
            email_consent_source = s.source, email_consent_evidence = s.evidence::jsonb,
            updated_at = now()
         FROM {STATEMENTS}
         WHERE p.tenant_id = $1 AND p.id = ANY($2) AND p.id = s.person_id"
    );
    columns
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    channel: String,
    purpose: String,
    state: String,
    legal_basis: String,
    source: String,
    notice: String,
    occurred_at: DateTime<Utc>,
    evidence: serde_json::Value,
    recorded_at: Option<DateTime<Utc>>,
}

impl RecordRow {
    fn into_proto(self) -> pb::ConsentRecord {
        pb::ConsentRecord {
            channel: self.channel,
            purpose: self.purpose,
            state: State::parse(&self.state)
                .map(State::to_proto)
                .unwrap_or_default() as i32,
            legal_basis: LegalBasis::parse(&self.legal_basis)
                .map(LegalBasis::to_proto)
                .unwrap_or_default() as i32,
            source: self.source,
            notice: self.notice,
            time: Some(to_proto(self.occurred_at)),
            evidence: strings(self.evidence),
            record_time: self.recorded_at.map(to_proto),
        }
    }
}

/// A JSON object as string values (other values in their JSON form).
pub fn strings(value: serde_json::Value) -> HashMap<String, String> {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => (key, text),
                other => (key, other.to_string()),
            })
            .collect(),
        _ => HashMap::new(),
    }
}

async fn exists(pool: &PgPool, tenant: TenantId, person: Uuid) -> Result<(), ApiError> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM people WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(person)
            .fetch_optional(pool)
            .await?;
    match found {
        Some(_) => Ok(()),
        None => {
            let mut conn = pool.acquire().await?;
            Err(crate::store::people::missing(&mut conn, tenant, person).await)
        }
    }
}

/// The current state of each channel and purpose `person` has one for.
pub async fn current(
    pool: &PgPool,
    tenant: TenantId,
    person: Uuid,
) -> Result<Vec<pb::ConsentRecord>, ApiError> {
    exists(pool, tenant, person).await?;
    let rows: Vec<RecordRow> = sqlx::query_as(
        "SELECT channel, purpose, state, legal_basis, source, notice, occurred_at, evidence,
                NULL::timestamptz AS recorded_at
         FROM consents WHERE tenant_id = $1 AND person_id = $2
         ORDER BY array_position(ARRAY['email', 'sms', 'phone', 'post'], channel), purpose",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(RecordRow::into_proto).collect())
}

/// The state of (`channel`, `purpose`) of `person` as the API shows it.
pub async fn one(
    pool: &PgPool,
    tenant: TenantId,
    person: Uuid,
    channel: Channel,
    purpose: &str,
) -> Result<pb::ConsentRecord, ApiError> {
    let row: Option<RecordRow> = sqlx::query_as(
        "SELECT channel, purpose, state, legal_basis, source, notice, occurred_at, evidence,
                NULL::timestamptz AS recorded_at
         FROM consents WHERE tenant_id = $1 AND person_id = $2 AND channel = $3 AND purpose = $4",
    )
    .bind(tenant)
    .bind(person)
    .bind(channel.as_str())
    .bind(purpose)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(RecordRow::into_proto).unwrap_or(pb::ConsentRecord {
        channel: channel.as_str().to_owned(),
        purpose: purpose.to_owned(),
        state: pb::ConsentState::None as i32,
        ..Default::default()
    }))
}

/// A page of `person`'s ledger, oldest first, after the statement `after`
/// (0: from the start), with the token of the next page. The ledger
/// outlives an erasure (without its evidence), so it is listed without the
/// person's row.
pub async fn history(
    pool: &PgPool,
    tenant: TenantId,
    person: Uuid,
    after: i64,
    limit: i64,
) -> Result<(Vec<pb::ConsentRecord>, Option<i64>), ApiError> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT id, channel, purpose, state, legal_basis, source, notice, occurred_at, evidence,
                recorded_at
         FROM consent_events WHERE tenant_id = $1 AND person_id = $2 AND id > $3
         ORDER BY id LIMIT $4",
    )
    .bind(tenant)
    .bind(person)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() && after == 0 {
        exists(pool, tenant, person).await?;
    }
    let next = match rows.last() {
        Some(last) if rows.len() as i64 == limit => Some(last.id),
        _ => None,
    };
    Ok((
        rows.into_iter().map(|r| r.record.into_proto()).collect(),
        next,
    ))
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    id: i64,
    #[sqlx(flatten)]
    record: RecordRow,
}

/// The legal bases `tenant` forbids, per channel.
pub async fn policy(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Vec<(Channel, LegalBasis)>, ApiError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT channel, legal_basis FROM consent_policy WHERE tenant_id = $1
         ORDER BY channel, legal_basis",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(c, b)| Some((Channel::parse(&c)?, LegalBasis::parse(&b)?)))
        .collect())
}

/// Replaces the policy of `tenant` with `forbidden`.
pub async fn set_policy(
    pool: &PgPool,
    tenant: TenantId,
    forbidden: &[(Channel, LegalBasis)],
) -> Result<(), ApiError> {
    let channels: Vec<&str> = forbidden.iter().map(|(c, _)| c.as_str()).collect();
    let bases: Vec<&str> = forbidden.iter().map(|(_, b)| b.as_str()).collect();
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM consent_policy WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO consent_policy (tenant_id, channel, legal_basis)
         SELECT $1, c, b FROM UNNEST($2::text[], $3::text[]) AS f(c, b)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&channels)
    .bind(&bases)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The channels on which `tenant` forbids `basis`.
pub async fn forbidding(
    conn: &mut PgConnection,
    tenant: TenantId,
    basis: LegalBasis,
) -> sqlx::Result<Vec<Channel>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT channel FROM consent_policy WHERE tenant_id = $1 AND legal_basis = $2",
    )
    .bind(tenant)
    .bind(basis.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().filter_map(|c| Channel::parse(c)).collect())
}
