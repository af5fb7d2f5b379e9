//! Import jobs and their issues as the API shows them.

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as pb;
use muster_runtime::time::{opt_to_proto, to_proto};
use muster_runtime::{ApiError, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct ImportRow {
    id: Uuid,
    file_name: String,
    preset: String,
    state: String,
    size_bytes: i64,
    bytes_read: i64,
    rows_read: i64,
    rows_empty: i64,
    created: i64,
    merged: i64,
    rejected: i64,
    warnings: i64,
    consent_granted: i64,
    suppressed: i64,
    duplicates_listed: i64,
    duplicates_merged: i64,
    encoding: Option<String>,
    delimiter: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    legal_basis: String,
    notice: String,
}

/// The columns an [`ImportRow`] is read from.
const COLUMNS: &str = "id, file_name, preset, state, size_bytes, bytes_read, rows_read,
    rows_empty, created, merged, rejected, warnings, consent_granted, suppressed,
    duplicates_listed, duplicates_merged, encoding, delimiter, error, created_at, finished_at,
    legal_basis, notice";

/// One import of `tenant`.
pub async fn get(pool: &PgPool, tenant: TenantId, id: Uuid) -> Result<pb::ImportJob, ApiError> {
    let row: Option<ImportRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM imports WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found(format!("import {id}")))?;
    Ok(job(row))
}

/// A page of the imports of `tenant`, newest first (ids are time-ordered),
/// those older than `before` when given.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<pb::ImportJob>, ApiError> {
    let rows: Vec<ImportRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM imports
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(tenant)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(job).collect())
}

fn job(row: ImportRow) -> pb::ImportJob {
    let state = match row.state.as_str() {
        "receiving" | "queued" => pb::ImportState::Queued,
        "running" => pb::ImportState::Running,
        "succeeded" => pb::ImportState::Succeeded,
        _ => pb::ImportState::Failed,
    };
    let preset = pb::ImportPreset::from_str_name(&row.preset).unwrap_or_default();
    pb::ImportJob {
        id: row.id.to_string(),
        state: state as i32,
        file_name: row.file_name,
        preset: preset as i32,
        size_bytes: row.size_bytes as u64,
        bytes_read: row.bytes_read as u64,
        counts: Some(pb::ImportCounts {
            rows_read: row.rows_read as u64,
            rows_empty: row.rows_empty as u64,
            created: row.created as u64,
            merged: row.merged as u64,
            rejected: row.rejected as u64,
            warnings: row.warnings as u64,
            consent_granted: row.consent_granted as u64,
            suppressed: row.suppressed as u64,
            duplicates_listed: row.duplicates_listed as u64,
            duplicates_merged: row.duplicates_merged as u64,
        }),
        encoding: row.encoding.unwrap_or_default(),
        delimiter: row.delimiter.unwrap_or_default(),
        error: row.error.unwrap_or_default(),
        create_time: Some(to_proto(row.created_at)),
        finish_time: opt_to_proto(row.finished_at),
        legal_basis: row.legal_basis,
        notice: row.notice,
    }
}

/// Where a page of issues ends: the line and id of its last issue.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IssueCursor {
    line: i64,
    id: i64,
}

impl IssueCursor {
    /// Reads a page token written by [`IssueCursor::to_token`].
    pub fn parse(token: &str) -> Option<Self> {
        let (line, id) = token.split_once('.')?;
        Some(Self {
            line: line.parse().ok()?,
            id: id.parse().ok()?,
        })
    }

    pub fn to_token(self) -> String {
        format!("{}.{}", self.line, self.id)
    }
}

/// A page of an import's issues in file order (by line; the file's own
/// issues, on lines 0 and 1, first), after `after`.
pub async fn issues(
    pool: &PgPool,
    tenant: TenantId,
    import: Uuid,
    after: IssueCursor,
    limit: i64,
) -> Result<(Vec<pb::ImportIssue>, Option<IssueCursor>), ApiError> {
    get(pool, tenant, import).await?;
    if after != IssueCursor::default() {
        let ours: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM import_issues WHERE import_id = $1 AND id = $2)",
        )
        .bind(import)
        .bind(after.id)
        .fetch_one(pool)
        .await?;
        if !ours {
            return Err(ApiError::invalid(
                "page_token",
                "this token is from the listing of another import; list this one from its \
                 first page (no token)",
            ));
        }
    }
    let rows: Vec<(i64, i64, String, String, String, String)> = sqlx::query_as(
        "SELECT id, line, field, value, reason, severity FROM import_issues
         WHERE import_id = $1 AND (line, id) > ($2, $3) ORDER BY line, id LIMIT $4",
    )
    .bind(import)
    .bind(after.line)
    .bind(after.id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| IssueCursor { line: r.1, id: r.0 }))
        .flatten();
    let issues = rows
        .into_iter()
        .map(
            |(_, line, field, value, reason, severity)| pb::ImportIssue {
                line: line as u64,
                field,
                value,
                reason,
                severity: if severity == "rejected" {
                    pb::IssueSeverity::Rejected
                } else {
                    pb::IssueSeverity::Warning
                } as i32,
            },
        )
        .collect();
    Ok((issues, next))
}

/// Fails imports whose progress stopped two minutes ago or more: their
/// process died. Re-uploading the file is safe: rows merge, never double.
pub async fn fail_interrupted(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE imports SET state = 'failed', finished_at = now(),
            error = 'interrupted: the service stopped during the import; upload the file again \
                     (rows already imported are merged, not doubled)'
         WHERE state IN ('receiving', 'queued', 'running')
           AND progressed_at < now() - interval '2 minutes'",
    )
    .execute(pool)
    .await?
    .rows_affected())
}
