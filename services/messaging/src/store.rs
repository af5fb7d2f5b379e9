//! Campaigns and templates as stored, and the delivery counts of a campaign.

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1::SegmentFilter;
use muster_proto::messaging::v1 as pb;
use muster_runtime::time::{opt_to_proto, to_proto};
use muster_runtime::{ApiError, TenantId};
use prost::Message;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::jobs;

#[derive(sqlx::FromRow, Clone)]
pub struct CampaignRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub template_id: Uuid,
    pub segment: Vec<u8>,
    pub from_name: String,
    pub from_email: String,
    pub reply_to: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
}

pub const CAMPAIGN_COLUMNS: &str = "id, tenant_id, name, template_id, segment, from_name, \
    from_email, reply_to, state, created_at, launched_at";

impl CampaignRow {
    /// The audience filter the campaign was created with.
    pub fn segment(&self) -> SegmentFilter {
        SegmentFilter::decode(self.segment.as_slice()).unwrap_or_default()
    }
}

/// One campaign of `tenant`, or not found.
pub async fn campaign(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: Uuid,
) -> Result<CampaignRow, ApiError> {
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = $1 AND id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("campaign {id}")))
}

#[derive(sqlx::FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub name: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: DateTime<Utc>,
}

/// One template of `tenant`, or not found.
pub async fn template(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: Uuid,
) -> Result<TemplateRow, ApiError> {
    sqlx::query_as(
        "SELECT id, name, subject, text_body, html_body, created_at FROM templates
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("template {id}")))
}

impl From<TemplateRow> for pb::Template {
    fn from(row: TemplateRow) -> Self {
        pb::Template {
            id: row.id.to_string(),
            name: row.name,
            subject: row.subject,
            text_body: row.text_body,
            html_body: row.html_body,
            create_time: Some(to_proto(row.created_at)),
        }
    }
}

/// Marks claims older than `stale` — left by processes that died mid-send —
/// as `unknown`: maybe received, never re-sent.
pub async fn reap_stale_claims(
    db: impl PgExecutor<'_>,
    campaign: Option<Uuid>,
    stale: std::time::Duration,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE deliveries SET state = 'unknown', error = 'the sending process stopped before \
         recording the SMTP answer; the message may have been received and is not re-sent'
         WHERE state = 'sending' AND claimed_at < now() - $2 * interval '1 millisecond'
           AND campaign_id IN (SELECT id FROM campaigns
                               WHERE ($1::uuid IS NULL OR id = $1)
                                 AND state IN ('sending', 'paused', 'cancelled'))",
    )
    .bind(campaign)
    .bind(stale.as_millis() as f64)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// Enqueues again the due deliveries of every sending campaign that saw no
/// claim for `after` since its jobs were last enqueued: its jobs were lost
/// to the broker. Returns each campaign and how many deliveries it got back.
pub async fn requeue_stalled(
    pool: &PgPool,
    after: std::time::Duration,
) -> sqlx::Result<Vec<(Uuid, usize)>> {
    let mut tx = pool.begin().await?;
    let stalled: Vec<(Uuid, TenantId)> = sqlx::query_as(
        "SELECT c.id, c.tenant_id FROM campaigns c
         WHERE c.state = 'sending'
           AND coalesce(c.enqueued_at, c.launched_at, c.created_at)
               < now() - $1 * interval '1 millisecond'
           AND NOT EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.campaign_id = c.id
                             AND d.claimed_at > now() - $1 * interval '1 millisecond')
         FOR UPDATE OF c SKIP LOCKED",
    )
    .bind(after.as_millis() as f64)
    .fetch_all(&mut *tx)
    .await?;
    let mut requeued = Vec::new();
    for (campaign, tenant) in stalled {
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM deliveries
             WHERE campaign_id = $1 AND state = 'queued' AND (due_at IS NULL OR due_at <= now())
             ORDER BY id",
        )
        .bind(campaign)
        .fetch_all(&mut *tx)
        .await?;
        jobs::enqueue(&mut tx, tenant, campaign, &due, jobs::SEND_QUEUE).await?;
        sqlx::query("UPDATE campaigns SET enqueued_at = now() WHERE id = $1")
            .bind(campaign)
            .execute(&mut *tx)
            .await?;
        if !due.is_empty() {
            requeued.push((campaign, due.len()));
        }
    }
    tx.commit().await?;
    Ok(requeued)
}

/// The campaign as the API shows it, with its delivery counts; a sending
/// campaign with nothing left queued or in flight is recorded as completed.
pub async fn campaign_view(
    pool: &PgPool,
    row: CampaignRow,
    stale: std::time::Duration,
) -> Result<pb::Campaign, ApiError> {
    if row.state == "sending" {
        reap_stale_claims(pool, Some(row.id), stale).await?;
    }
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM deliveries WHERE campaign_id = $1 GROUP BY state",
    )
    .bind(row.id)
    .fetch_all(pool)
    .await?;
    let mut counts = pb::DeliveryCounts::default();
    for (state, n) in counted {
        let n = n as u64;
        counts.total += n;
        match state.as_str() {
            "queued" => counts.queued = n,
            "sending" => counts.sending = n,
            "sent" => counts.sent = n,
            "failed" => counts.failed = n,
            "suppressed" => counts.suppressed = n,
            "cancelled" => counts.cancelled = n,
            _ => counts.unknown = n,
        }
    }
    let (bounced, complained): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT delivery_id) FILTER (WHERE kind <> 'complaint'),
                count(DISTINCT delivery_id) FILTER (WHERE kind = 'complaint')
         FROM bounces WHERE campaign_id = $1",
    )
    .bind(row.id)
    .fetch_one(pool)
    .await?;
    counts.bounced = bounced as u64;
    counts.complained = complained as u64;

    let mut state = row.state.clone();
    if state == "sending" && counts.queued == 0 && counts.sending == 0 {
        sqlx::query("UPDATE campaigns SET state = 'completed' WHERE id = $1 AND state = 'sending'")
            .bind(row.id)
            .execute(pool)
            .await?;
        state = "completed".into();
    }
    Ok(pb::Campaign {
        id: row.id.to_string(),
        name: row.name.clone(),
        template_id: row.template_id.to_string(),
        segment: Some(row.segment()),
        from_name: row.from_name.clone(),
        from_email: row.from_email.clone(),
        reply_to: row.reply_to.clone(),
        state: state_to_proto(&state) as i32,
        counts: Some(counts),
        create_time: Some(to_proto(row.created_at)),
        launch_time: opt_to_proto(row.launched_at),
    })
}

fn state_to_proto(state: &str) -> pb::CampaignState {
    match state {
        "draft" => pb::CampaignState::Draft,
        "launching" => pb::CampaignState::Launching,
        "sending" => pb::CampaignState::Sending,
        "paused" => pb::CampaignState::Paused,
        "cancelled" => pb::CampaignState::Cancelled,
        "completed" => pb::CampaignState::Completed,
        _ => pb::CampaignState::Unspecified,
    }
}
