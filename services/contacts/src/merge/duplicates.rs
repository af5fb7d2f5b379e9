//! Duplicate detection beyond the e-mail address, set-based in one
//! statement: the same phone (any of either person's numbers), the same id
//! in the same outside system, the same folded name and address (exact
//! kinds), the same folded name and postal code or birth date (likely
//! kinds). Each organization's rules say which exact kinds merge without
//! review; every other pair is listed until it is merged or dismissed.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as pb;
use muster_runtime::time::to_proto;
use muster_runtime::{ApiError, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

use super::{merge_in, survivor_of};
use crate::store::people;

/// A reason two people may be one, as stored in `duplicates.reasons`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Phone,
    ExternalId,
    NameAddress,
    NamePostalCode,
    NameBirthDate,
}

impl Kind {
    /// The kinds an organization may merge without review.
    pub const EXACT: [Kind; 3] = [Kind::Phone, Kind::ExternalId, Kind::NameAddress];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Phone => "phone",
            Kind::ExternalId => "external_id",
            Kind::NameAddress => "name_address",
            Kind::NamePostalCode => "name_postal_code",
            Kind::NameBirthDate => "name_birth_date",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        [
            Self::EXACT.as_slice(),
            &[Kind::NamePostalCode, Kind::NameBirthDate],
        ]
        .concat()
        .into_iter()
        .find(|k| k.as_str() == stored)
    }

    fn to_proto(self) -> pb::DuplicateKind {
        match self {
            Kind::Phone => pb::DuplicateKind::Phone,
            Kind::ExternalId => pb::DuplicateKind::ExternalId,
            Kind::NameAddress => pb::DuplicateKind::NameAddress,
            Kind::NamePostalCode => pb::DuplicateKind::NamePostalCode,
            Kind::NameBirthDate => pb::DuplicateKind::NameBirthDate,
        }
    }

    /// The kind of a request, refusing those that cannot merge automatically.
    pub fn exact_from_proto(value: i32, field: &str) -> Result<Self, ApiError> {
        match pb::DuplicateKind::try_from(value) {
            Ok(pb::DuplicateKind::Phone) => Ok(Kind::Phone),
            Ok(pb::DuplicateKind::ExternalId) => Ok(Kind::ExternalId),
            Ok(pb::DuplicateKind::NameAddress) => Ok(Kind::NameAddress),
            _ => Err(ApiError::invalid(
                field,
                format!(
                    "{value} cannot merge automatically; choose among PHONE, EXTERNAL_ID and \
                     NAME_ADDRESS (likely duplicates are always reviewed)"
                ),
            )),
        }
    }
}

/// A number held by more people than this (a switchboard, a family line, a
/// placeholder typed into a form) says nothing of who is who: it pairs no one.
/// Without the bound, a number shared by n people lists n(n-1)/2 pairs.
const MAX_HOLDERS: i64 = 3;

/// Pairs of people of `tenant` that may be one, with their reasons, among
/// the people an import touched (`$2`, all when NULL) and everyone else. Phones are
/// stored in E.164, so they compare as they are. Names use the stored folded
/// name (`people.name_key`) and its index, phones `people_phone` and
/// `person_phones_phone`.
/// A name is joined together with the postal code or the birth date, as one
/// key, never alone: joined on the name (a merge join along its index), the
/// n people of a common name made n² pairs to filter (5,000 "Marie Martin"
/// took 30 s). An outside id held by more than [`MAX_HOLDERS`]
/// people is a placeholder ("0"), like a shared phone: it pairs no one.
// TODO(#4): external ids are matched by expanding every person's ids in a
// hash join, most of the 4 s a detection of 2,000 touched people among
// 200,000 takes; a table of (tenant, system, id) would make it a lookup.
const FIND_PAIRS: &str = "
    WITH scope AS MATERIALIZED (
        SELECT id, phone, external_ids, name_key, muster_fold(postal_code) AS postal,
               muster_fold(address_line1) AS line, birth_date
        FROM people WHERE tenant_id = $1
            AND ($2::uuid IS NULL
                 OR updated_at >= (SELECT created_at FROM imports WHERE id = $2))
    ), numbers AS (
        SELECT id, phone FROM scope WHERE phone IS NOT NULL
        UNION
        SELECT n.person_id, n.phone FROM person_phones n JOIN scope s ON s.id = n.person_id
    ), held AS (
        SELECT id, phone FROM people WHERE tenant_id = $1 AND phone IS NOT NULL
        UNION ALL
        SELECT person_id, phone FROM person_phones WHERE tenant_id = $1
    ), personal AS (
        SELECT phone FROM held WHERE phone IN (SELECT phone FROM numbers)
        GROUP BY phone HAVING count(*) <= $3
    ), found AS (
        SELECT x.id AS x, o.id AS y, 'phone' AS kind
        FROM numbers x
        JOIN personal USING (phone)
        JOIN held o ON o.phone = x.phone AND o.id <> x.id
      UNION ALL
        SELECT x.id, o.id, 'external_id'
        FROM (
            SELECT s.id, e.key, e.value FROM scope s
            CROSS JOIN LATERAL jsonb_each_text(s.external_ids) e
        ) x
        JOIN (
            SELECT id, key, value, count(*) OVER (PARTITION BY key, value) AS holders
            FROM (
                SELECT p.id, e.key, e.value FROM people p
                CROSS JOIN LATERAL jsonb_each_text(p.external_ids) e
                WHERE p.tenant_id = $1 AND p.external_ids <> '{}'
            ) ids
        ) o ON o.key = x.key AND o.value = x.value AND o.id <> x.id AND o.holders <= $3
      UNION ALL
        SELECT s.id, o.id,
            CASE WHEN s.line <> '' AND s.line = muster_fold(o.address_line1)
                 THEN 'name_address' ELSE 'name_postal_code' END
        FROM scope s
        JOIN people o ON o.tenant_id = $1 AND o.id <> s.id
            AND o.name_key || ' ' || muster_fold(o.postal_code) = s.name_key || ' ' || s.postal
        WHERE s.name_key IS NOT NULL AND s.postal <> ''
      UNION ALL
        SELECT s.id, o.id, 'name_birth_date'
        FROM scope s
        JOIN people o ON o.tenant_id = $1 AND o.id <> s.id
            AND o.name_key || ' ' || o.birth_date::text = s.name_key || ' ' || s.birth_date::text
        WHERE s.name_key IS NOT NULL AND s.birth_date IS NOT NULL
    )
    SELECT LEAST(x, y), GREATEST(x, y), array_agg(DISTINCT kind ORDER BY kind)
    FROM found GROUP BY 1, 2";

/// What one detection run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    /// Pairs newly listed for review.
    pub listed: u64,
    /// Pairs merged by the organization's rules.
    pub merged: u64,
}

/// Finds the duplicates of the people written since `import` began (everyone
/// when `None`; the scope stays in the database, so a million-row import
/// costs no memory here), records the
/// pairs, then merges those the rules say to, the older record surviving.
/// Each merge is its own transaction; a pair whose people were merged
/// meanwhile is followed to the survivors.
#[tracing::instrument(name = "contacts.duplicates.detect", skip_all, fields(tenant_id = %tenant))]
pub async fn detect(
    pool: &PgPool,
    tenant: TenantId,
    import: Option<Uuid>,
) -> anyhow::Result<Detected> {
    // Over a whole organization the query hashes every phone and name; at the
    // default 4 MB each hash spilled to disk in batches.
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL work_mem = '64MB'")
        .execute(&mut *tx)
        .await?;
    let pairs: Vec<(Uuid, Uuid, Vec<String>)> = sqlx::query_as(FIND_PAIRS)
        .bind(tenant)
        .bind(import)
        .bind(MAX_HOLDERS)
        .fetch_all(&mut *tx)
        .await
        .context("finding duplicates")?;
    tx.commit().await?;
    if pairs.is_empty() {
        return Ok(Detected::default());
    }

    let ids: Vec<Uuid> = pairs.iter().map(|_| Uuid::now_v7()).collect();
    let (a, b): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().map(|p| (p.0, p.1)).unzip();
    let reasons: Vec<String> = pairs.iter().map(|p| p.2.join(",")).collect();
    let listed: Vec<(Uuid, Uuid, Vec<String>, bool)> = sqlx::query_as(
        "INSERT INTO duplicates (id, tenant_id, person_a, person_b, reasons)
         SELECT id, $1, a, b, string_to_array(r, ',')
         FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::text[]) AS u(id, a, b, r)
         ON CONFLICT (tenant_id, person_a, person_b) DO UPDATE SET reasons = EXCLUDED.reasons
            WHERE duplicates.state = 'open'
         RETURNING person_a, person_b, reasons, (xmax = 0)",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&a)
    .bind(&b)
    .bind(&reasons)
    .fetch_all(pool)
    .await
    .context("listing duplicates")?;

    let automatic = rules(pool, tenant).await?;
    let mut done = Detected::default();
    for (a, b, reasons, inserted) in listed {
        let rule = reasons
            .iter()
            .filter_map(|r| Kind::parse(r))
            .find(|k| automatic.contains(k));
        let Some(rule) = rule else {
            done.listed += u64::from(inserted);
            continue;
        };
        let mut tx = pool.begin().await?;
        let survivor = current(&mut tx, tenant, a).await?;
        let merged = current(&mut tx, tenant, b).await?;
        if survivor == merged {
            continue;
        }
        let (survivor, merged) = (survivor.min(merged), survivor.max(merged));
        // The same number or outside id may belong to two people: a couple's
        // line, an id reused by two outside accounts (NationBuilder numbers
        // each nation's people from 1).
        if rule != Kind::NameAddress && !same_or_unnamed(&mut tx, survivor, merged).await? {
            done.listed += u64::from(inserted);
            continue;
        }
        let by = format!("rule:{}", rule.as_str());
        let reason = format!("same {}", rule.as_str().replace('_', " "));
        match merge_in(&mut tx, tenant, survivor, merged, &reason, &by).await {
            Ok(merge) => {
                tx.commit().await?;
                tracing::info!(merge_id = %merge.id, rule = rule.as_str(), "duplicates merged");
                done.merged += 1;
            }
            // Erased, or merged by someone else meanwhile: nothing left to merge.
            Err(ApiError::FailedPrecondition(_) | ApiError::NotFound(_)) => {}
            Err(error) => return Err(anyhow::Error::new(error).context("merging duplicates")),
        }
    }
    Ok(done)
}

/// Whether two people sharing a number or an outside id may be merged by
/// the rule: no first name and no last name that both give differ (folded).
/// A couple or a family on one line ("Marie" and "Jean Dupont"), or two
/// accounts' people under one id, are listed for review.
async fn same_or_unnamed(tx: &mut sqlx::PgConnection, a: Uuid, b: Uuid) -> sqlx::Result<bool> {
    let agree: Option<bool> = sqlx::query_scalar(
        "WITH names AS (
             SELECT id, nullif(muster_fold(first_name), '') AS first,
                    nullif(muster_fold(last_name), '') AS last
             FROM people WHERE id IN ($1, $2)
         )
         SELECT (x.first IS NULL OR y.first IS NULL OR x.first = y.first)
            AND (x.last IS NULL OR y.last IS NULL OR x.last = y.last)
         FROM names x JOIN names y ON x.id = $1 AND y.id = $2",
    )
    .bind(a)
    .bind(b)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(agree.unwrap_or(false))
}

async fn current(tx: &mut sqlx::PgConnection, tenant: TenantId, id: Uuid) -> sqlx::Result<Uuid> {
    Ok(survivor_of(tx, tenant, id).await?.unwrap_or(id))
}

/// Detection over the people an import wrote (those changed since it
/// began), recorded on the import. A failure is logged, not raised: the
/// import itself succeeded, and FindDuplicates runs the same detection again.
pub async fn after_import(pool: &PgPool, tenant: TenantId, import: Uuid) {
    let found = match detect(pool, tenant, Some(import)).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(import_id = %import, error = format!("{error:#}"),
                "duplicate detection after an import failed; run FindDuplicates");
            return;
        }
    };
    tracing::info!(import_id = %import, listed = found.listed, merged = found.merged,
        "duplicates detected after import");
    let recorded = sqlx::query(
        "UPDATE imports SET duplicates_listed = $2, duplicates_merged = $3 WHERE id = $1",
    )
    .bind(import)
    .bind(found.listed as i64)
    .bind(found.merged as i64)
    .execute(pool)
    .await;
    if let Err(error) = recorded {
        tracing::warn!(import_id = %import, %error, "could not record the duplicates found");
    }
}

/// The exact kinds `tenant` merges without review.
pub async fn rules(pool: &PgPool, tenant: TenantId) -> sqlx::Result<HashSet<Kind>> {
    let stored: Vec<(String, bool)> =
        sqlx::query_as("SELECT kind, automatic FROM duplicate_rules WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(pool)
            .await?;
    Ok(Kind::EXACT
        .into_iter()
        .filter(
            |kind| match stored.iter().find(|(k, _)| k == kind.as_str()) {
                Some((_, automatic)) => *automatic,
                None => *kind == Kind::ExternalId,
            },
        )
        .collect())
}

/// Sets which exact kinds `tenant` merges without review; the others are reviewed.
pub async fn set_rules(
    pool: &PgPool,
    tenant: TenantId,
    automatic: &HashSet<Kind>,
) -> sqlx::Result<()> {
    let kinds: Vec<&str> = Kind::EXACT.iter().map(|k| k.as_str()).collect();
    let flags: Vec<bool> = Kind::EXACT.iter().map(|k| automatic.contains(k)).collect();
    sqlx::query(
        "INSERT INTO duplicate_rules (tenant_id, kind, automatic)
         SELECT $1, k, a FROM UNNEST($2::text[], $3::bool[]) AS u(k, a)
         ON CONFLICT (tenant_id, kind) DO UPDATE
            SET automatic = EXCLUDED.automatic, updated_at = now()",
    )
    .bind(tenant)
    .bind(&kinds)
    .bind(&flags)
    .execute(pool)
    .await?;
    Ok(())
}

/// The rules as the API shows them.
pub fn rules_to_proto(automatic: &HashSet<Kind>) -> pb::DuplicateRules {
    pb::DuplicateRules {
        automatic: Kind::EXACT
            .into_iter()
            .filter(|k| automatic.contains(k))
            .map(|k| k.to_proto() as i32)
            .collect(),
    }
}

#[derive(sqlx::FromRow)]
struct PairRow {
    id: Uuid,
    person_a: Uuid,
    person_b: Uuid,
    reasons: Vec<String>,
    state: String,
    found_at: DateTime<Utc>,
}

fn state_name(state: pb::DuplicateState) -> &'static str {
    match state {
        pb::DuplicateState::Dismissed => "dismissed",
        pb::DuplicateState::Merged => "merged",
        _ => "open",
    }
}

/// A page of pairs in `state`, in the order they were found, after `after`.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    state: pb::DuplicateState,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<pb::Duplicate>, ApiError> {
    let rows: Vec<PairRow> = sqlx::query_as(
        "SELECT id, person_a, person_b, reasons, state, found_at FROM duplicates
         WHERE tenant_id = $1 AND state = $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(tenant)
    .bind(state_name(state))
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    // The page's people in one query; those merged or erased since are
    // looked up one by one (the survivor, or nobody).
    let ids: Vec<Uuid> = rows.iter().flat_map(|r| [r.person_a, r.person_b]).collect();
    let people = people::get_many(pool, tenant, &ids).await?;
    let mut pairs = Vec::with_capacity(rows.len());
    for row in rows {
        let first = people.get(&row.person_a).cloned();
        let second = people.get(&row.person_b).cloned();
        pairs.push(to_proto_pair(pool, tenant, row, [first, second]).await?);
    }
    Ok(pairs)
}

/// Marks the pair `id` as two different people.
pub async fn dismiss(
    pool: &PgPool,
    tenant: TenantId,
    id: Uuid,
    by: &str,
) -> Result<pb::Duplicate, ApiError> {
    let row: Option<PairRow> = sqlx::query_as(
        "UPDATE duplicates SET state = 'dismissed', decided_at = now(), decided_by = $3
         WHERE tenant_id = $1 AND id = $2 AND state <> 'merged'
         RETURNING id, person_a, person_b, reasons, state, found_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(by)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => to_proto_pair(pool, tenant, row, [None, None]).await,
        None => {
            let merged: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM duplicates WHERE tenant_id = $1 AND id = $2)",
            )
            .bind(tenant)
            .bind(id)
            .fetch_one(pool)
            .await?;
            Err(match merged {
                true => ApiError::precondition(format!(
                    "duplicate {id} was merged already and cannot be dismissed"
                )),
                false => ApiError::not_found(format!("duplicate {id}")),
            })
        }
    }
}

/// The pair with both people as they are now (a merged one as its survivor).
/// The pair as the API shows it; `known` holds its people when the caller
/// has them already (the others are looked up, following merges).
async fn to_proto_pair(
    pool: &PgPool,
    tenant: TenantId,
    row: PairRow,
    known: [Option<pb::Person>; 2],
) -> Result<pb::Duplicate, ApiError> {
    let person = |id, known: Option<pb::Person>| async move {
        if known.is_some() {
            return Ok(known);
        }
        match people::get(pool, tenant, id).await {
            Ok(person) => Ok(Some(person)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    };
    let [first, second] = known;
    let state = match row.state.as_str() {
        "dismissed" => pb::DuplicateState::Dismissed,
        "merged" => pb::DuplicateState::Merged,
        _ => pb::DuplicateState::Open,
    };
    Ok(pb::Duplicate {
        id: row.id.to_string(),
        first_id: row.person_a.to_string(),
        second_id: row.person_b.to_string(),
        first: person(row.person_a, first).await?,
        second: person(row.person_b, second).await?,
        reasons: row
            .reasons
            .iter()
            .filter_map(|r| Kind::parse(r))
            .map(|k| k.to_proto() as i32)
            .collect(),
        state: state as i32,
        find_time: Some(to_proto(row.found_at)),
    })
}
