//! `contacts.person.merged`: what messaging holds about a merged person is
//! re-pointed to the survivor, so that a delivery, a bounce or a
//! suppression of either is found under the one record left.

use muster_proto::events::v1::PersonMerged;
use muster_runtime::TenantId;
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use prost::Message;
use sqlx::PgConnection;
use sqlx::PgPool;
use uuid::Uuid;

/// The queue, and the inbox name, of merges announced by contacts.
pub const MERGES_QUEUE: &str = "messaging.merges";

/// Re-points the merged person's rows to the survivor.
pub struct Merges {
    pub pool: PgPool,
}

/// Rows re-pointed by one merge.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repointed {
    pub deliveries: u64,
    /// Deliveries left under the merged id: the campaign reached the survivor too.
    pub deliveries_kept: u64,
    pub bounces: u64,
    pub suppressions: u64,
}

impl Handler for Merges {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = PersonMerged::decode(message.body.as_slice())
            .map_err(|e| HandleError::Permanent(anyhow::anyhow!("undecodable body: {e}")))?;
        let id = |raw: &str, field: &str| {
            Uuid::parse_str(raw)
                .map_err(|_| HandleError::Permanent(anyhow::anyhow!("{field} is not an id")))
        };
        let survivor = id(&event.survivor_id, "survivor_id")?;
        let merged = id(&event.merged_id, "merged_id")?;
        let merge = id(&event.merge_id, "merge_id")?;
        let time = event
            .time
            .as_ref()
            .and_then(muster_runtime::time::from_proto)
            .unwrap_or_else(chrono::Utc::now);

        let Some(mut tx) =
            consumer::begin_once(&self.pool, MERGES_QUEUE, message.message_id).await?
        else {
            return Ok(());
        };
        let tenant = message.tenant_id;
        let moved = repoint(&mut tx, tenant, survivor, merged).await?;
        sqlx::query(
            "INSERT INTO person_merges (tenant_id, merged_id, survivor_id, merge_id, merged_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, merged_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .bind(merge)
        .bind(time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %tenant, survivor_id = %survivor, merged_id = %merged,
            merge_id = %merge, deliveries = moved.deliveries, kept = moved.deliveries_kept,
            bounces = moved.bounces, suppressions = moved.suppressions, "person merge applied");
        Ok(())
    }
}

/// Moves the rows of `merged` to `survivor`, and the people merged into
/// `merged` earlier along with them.
pub async fn repoint(
    tx: &mut PgConnection,
    tenant: TenantId,
    survivor: Uuid,
    merged: Uuid,
) -> sqlx::Result<Repointed> {
    let deliveries = sqlx::query(
        "UPDATE deliveries d SET person_id = $2
         WHERE d.tenant_id = $1 AND d.person_id = $3
           AND NOT EXISTS (SELECT 1 FROM deliveries s
                           WHERE s.campaign_id = d.campaign_id AND s.person_id = $2)",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let deliveries_kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(merged)
    .fetch_one(&mut *tx)
    .await?;
    let bounces =
        sqlx::query("UPDATE bounces SET person_id = $2 WHERE tenant_id = $1 AND person_id = $3")
            .bind(tenant)
            .bind(survivor)
            .bind(merged)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let suppressions = sqlx::query(
        "UPDATE suppressions SET person_id = $2 WHERE tenant_id = $1 AND person_id = $3",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE person_merges SET survivor_id = $2 WHERE tenant_id = $1 AND survivor_id = $3",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .execute(&mut *tx)
    .await?;
    Ok(Repointed {
        deliveries,
        deliveries_kept: deliveries_kept as u64,
        bounces,
        suppressions,
    })
}

/// `person` and the people merged into it, whose kept deliveries are theirs.
pub async fn with_merged(
    tx: &mut PgConnection,
    tenant: TenantId,
    person: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    let mut people: Vec<Uuid> = sqlx::query_scalar(
        "SELECT merged_id FROM person_merges WHERE tenant_id = $1 AND survivor_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(&mut *tx)
    .await?;
    people.insert(0, person);
    Ok(people)
}
