//! Saved segments: a name and a filter, scoped by tenant.

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as pb;
use muster_runtime::time::to_proto;
use muster_runtime::{ApiError, TenantId};
use prost::Message;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use super::custom_fields;
use crate::consent;
use crate::domain::custom_field::Definitions;
use crate::segment::Filter;

#[derive(sqlx::FromRow)]
struct SavedRow {
    id: Uuid,
    name: String,
    filter: Vec<u8>,
    created_at: DateTime<Utc>,
}

fn into_proto(row: SavedRow) -> Result<pb::SavedSegment, ApiError> {
    let filter = pb::SegmentFilter::decode(row.filter.as_slice()).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("decoding saved segment {}: {e}", row.id))
    })?;
    Ok(pb::SavedSegment {
        id: row.id.to_string(),
        name: row.name,
        filter: Some(filter),
        create_time: Some(to_proto(row.created_at)),
        count: None,
    })
}

/// Saves `filter`, already checked, under `name`; names are unique per tenant.
pub async fn create(
    pool: &PgPool,
    tenant: TenantId,
    name: &str,
    filter: &pb::SegmentFilter,
) -> Result<pb::SavedSegment, ApiError> {
    let row: Option<SavedRow> = sqlx::query_as(
        "INSERT INTO saved_segments (id, tenant_id, name, filter) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, name) DO NOTHING
         RETURNING id, name, filter, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(name)
    .bind(filter.encode_to_vec())
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => into_proto(row),
        None => Err(ApiError::AlreadyExists(format!(
            "a saved segment is already named {name:?}; choose another name or delete it first"
        ))),
    }
}

/// One saved segment of `tenant`, without its count.
pub async fn get(pool: &PgPool, tenant: TenantId, id: Uuid) -> Result<pb::SavedSegment, ApiError> {
    let row: Option<SavedRow> = sqlx::query_as(
        "SELECT id, name, filter, created_at FROM saved_segments
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    into_proto(row.ok_or_else(|| ApiError::not_found(format!("saved segment {id}")))?)
}

/// A page of the saved segments of `tenant`, in id order after `after`.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<pb::SavedSegment>, ApiError> {
    let rows: Vec<SavedRow> = sqlx::query_as(
        "SELECT id, name, filter, created_at FROM saved_segments
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(tenant)
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(into_proto).collect()
}

/// Deletes a saved segment of `tenant`; campaigns naming it fail at launch.
pub async fn delete(pool: &PgPool, tenant: TenantId, id: Uuid) -> Result<(), ApiError> {
    let deleted = sqlx::query("DELETE FROM saved_segments WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    match deleted {
        0 => Err(ApiError::not_found(format!("saved segment {id}"))),
        _ => Ok(()),
    }
}

/// The names of the saved segments of `tenant` whose filter checks against
/// the custom fields `before` and would no longer check against `after`
/// (a field deleted, a choice removed), with the reason of each.
pub async fn broken_by(
    executor: impl sqlx::PgExecutor<'_>,
    tenant: TenantId,
    before: &Definitions,
    after: &Definitions,
) -> Result<Vec<(String, String)>, ApiError> {
    let rows: Vec<SavedRow> = sqlx::query_as(
        "SELECT id, name, filter, created_at FROM saved_segments
         WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let filter = pb::SegmentFilter::decode(row.filter.as_slice()).ok()?;
            Filter::parse_with(&filter, before).ok()?;
            let error = Filter::parse_with(&filter, after).err()?;
            Some((row.name, error.to_string()))
        })
        .collect())
}

/// Checks `filter`, resolves the saved segment it names, if any, and
/// applies the organization's consent policy as it stands now.
pub async fn resolve(
    pool: &PgPool,
    tenant: TenantId,
    filter: &pb::SegmentFilter,
) -> Result<Filter, ApiError> {
    let resolved = resolve_saved(pool, tenant, filter).await?;
    let policy = consent::store::policy(pool, tenant).await?;
    Ok(resolved.with_policy(&policy))
}

async fn resolve_saved(
    pool: &PgPool,
    tenant: TenantId,
    filter: &pb::SegmentFilter,
) -> Result<Filter, ApiError> {
    let fields = custom_fields::load(pool, tenant).await?;
    let checked = Filter::parse_with(filter, &fields)?;
    let Some(id) = checked.saved_segment() else {
        return Ok(checked);
    };
    let saved = get(pool, tenant, id).await.map_err(|error| match error {
        ApiError::NotFound(_) => ApiError::invalid(
            "filter.saved_segment_id",
            format!("no saved segment {id} in this organization; list them with ListSavedSegments"),
        ),
        other => other,
    })?;
    let saved = Filter::parse_with(&saved.filter.unwrap_or_default(), &fields)?;
    Ok(checked.and_saved(saved))
}

/// How many people of `tenant` match `filter` now.
pub async fn count(pool: &PgPool, tenant: TenantId, filter: &Filter) -> Result<u64, ApiError> {
    let mut query = QueryBuilder::new("SELECT count(*) FROM people");
    filter.push_where(&mut query, tenant);
    let mut tx = reading(pool, filter).await?;
    // Planned for its values each time (see `Filter::push_where`).
    let count: i64 = query
        .build_query_scalar()
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(count as u64)
}

/// A transaction for reading people by `filter`. The people of a donations
/// or attendance condition are an uncorrelated set; ORed with another
/// condition, PostgreSQL hashes that set once if it fits in work_mem, and
/// otherwise scans it again for every person — over 20 minutes for a
/// quarter of a million donors among a million people at the default 4 MB,
/// 0.3 s at 64 MB (psql, 2026-12-05); 64 MB holds a few million people.
/// Only such filters get it: with it, plain tag and postal code counts were
/// planned otherwise and took twice the time of the same SQL at the default
/// (`muster-bench segments`).
pub async fn reading(
    pool: &PgPool,
    filter: &Filter,
) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    if filter.reads_projections() {
        sqlx::query("SET LOCAL work_mem = '64MB'")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}
