//! Recording a report: the bounce row, the suppression it calls for, and for
//! a complaint the event through which contacts withdraws e-mail consent.

use muster_proto::events::v1::DeliveryComplained;
use muster_proto::messaging::v1 as pb;
use muster_runtime::outbox::{Destination, Outgoing};
use muster_runtime::{ApiError, TenantId};
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Bounce, Kind, Report};
use crate::BounceSettings;

/// The event contacts reacts to by withdrawing e-mail consent.
pub const COMPLAINED: &str = "messaging.delivery.complained";

/// The delivery a report is about.
#[derive(Debug, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub campaign_id: Uuid,
    pub person_id: Uuid,
    pub email: String,
}

/// A report as received, for recording.
pub struct Received<'a> {
    pub report: &'a Report,
    /// The bytes the report came as: kept as a digest, so that a provider
    /// posting the same report again changes nothing.
    pub raw: &'a [u8],
}

/// Records what `received` says about the delivery its Message-ID names.
/// A caller acting for an organization reaches only that organization's
/// deliveries; a service caller (the gateway's webhooks) reaches any.
#[tracing::instrument(
    name = "messaging.bounces.ingest",
    skip_all,
    fields(provider = received.report.format.as_str())
)]
pub async fn ingest(
    pool: &PgPool,
    settings: &BounceSettings,
    caller: Option<TenantId>,
    received: Received<'_>,
) -> Result<pb::IngestBounceResponse, ApiError> {
    let report = received.report;
    let Some(bounce) = report.worst() else {
        return Ok(pb::IngestBounceResponse::default());
    };
    let id = report.delivery_id().ok_or_else(|| {
        ApiError::not_found("the delivery of this report (it names no Message-ID of ours)")
    })?;
    let delivery = find_delivery(pool, id, caller)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("delivery {id}")))?;

    let digest = hex_sha256(received.raw);
    let mut tx = pool.begin().await?;
    let outcome = record(&mut tx, settings, &delivery, report, bounce, &digest).await?;
    tx.commit().await?;
    tracing::info!(
        tenant_id = %delivery.tenant_id,
        delivery_id = %delivery.id,
        kind = bounce.kind.as_str(),
        provider = report.format.as_str(),
        suppressed = outcome.suppressed,
        duplicate = outcome.duplicate,
        "bounce ingested"
    );
    Ok(pb::IngestBounceResponse {
        bounces: vec![pb::IngestedBounce {
            delivery_id: delivery.id.to_string(),
            kind: kind_to_proto(bounce.kind) as i32,
            status: bounce.status.clone().unwrap_or_default(),
            reason: bounce.reason.clone(),
            suppressed: outcome.suppressed,
            duplicate: outcome.duplicate,
        }],
    })
}

/// The delivery `id`, within `tenant` when given.
pub async fn find_delivery(
    pool: &PgPool,
    id: Uuid,
    tenant: Option<TenantId>,
) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as(
        "SELECT id, tenant_id, campaign_id, person_id, email FROM deliveries
         WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(pool)
    .await
}

/// What recording one bounce did.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The address is suppressed now.
    pub suppressed: bool,
    /// The same report was recorded before; nothing changed.
    pub duplicate: bool,
}

/// Stores `bounce` against `delivery` and applies its effect, in `tx`.
pub async fn record(
    tx: &mut PgConnection,
    settings: &BounceSettings,
    delivery: &Delivery,
    report: &Report,
    bounce: &Bounce,
    raw_sha256: &str,
) -> Result<Outcome, ApiError> {
    let email_key = delivery.email.trim().to_lowercase();
    // One address at a time, so that concurrent transient bounces are
    // counted against the limit one after the other.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("bounces:{}:{email_key}", delivery.tenant_id))
        .execute(&mut *tx)
        .await?;

    let inserted = sqlx::query(
        "INSERT INTO bounces (id, tenant_id, delivery_id, campaign_id, person_id, email_key,
                              kind, status, reason, provider, report_id, raw_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (tenant_id, raw_sha256, email_key) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(delivery.tenant_id)
    .bind(delivery.id)
    .bind(delivery.campaign_id)
    .bind(delivery.person_id)
    .bind(&email_key)
    .bind(bounce.kind.as_str())
    .bind(bounce.status.as_deref().unwrap_or_default())
    .bind(&bounce.reason)
    .bind(report.format.as_str())
    .bind(report.report_id.as_deref().unwrap_or_default())
    .bind(raw_sha256)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        let suppressed = is_suppressed(tx, delivery.tenant_id, &email_key).await?;
        return Ok(Outcome {
            suppressed,
            duplicate: true,
        });
    }

    let suppress = match bounce.kind {
        Kind::Permanent => Some("bounced"),
        Kind::Complaint => Some("complained"),
        Kind::Transient => {
            let recent = transient_count(tx, settings, delivery.tenant_id, &email_key).await?;
            (recent >= i64::from(settings.transient_limit)).then_some("bounced")
        }
    };
    if let Some(reason) = suppress {
        suppress_address(tx, delivery, &email_key, reason).await?;
    }
    if bounce.kind == Kind::Complaint {
        announce_complaint(tx, delivery, report).await?;
    }
    let suppressed = match suppress {
        Some(_) => true,
        None => is_suppressed(tx, delivery.tenant_id, &email_key).await?,
    };
    Ok(Outcome {
        suppressed,
        duplicate: false,
    })
}

/// Transient bounces of the address within the window, this one included.
async fn transient_count(
    tx: &mut PgConnection,
    settings: &BounceSettings,
    tenant: TenantId,
    email_key: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM bounces
         WHERE tenant_id = $1 AND email_key = $2 AND kind = 'transient'
           AND received_at > now() - make_interval(days => $3)",
    )
    .bind(tenant)
    .bind(email_key)
    .bind(settings.transient_window_days as i32)
    .fetch_one(&mut *tx)
    .await
}

/// Suppresses the address. A bounce or a complaint outranks a consent-based
/// suppression, which a later consent grant would lift: a dead mailbox or a
/// spam report stays suppressed whatever consent says.
async fn suppress_address(
    tx: &mut PgConnection,
    delivery: &Delivery,
    email_key: &str,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO suppressions (tenant_id, email_key, person_id, reason)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, email_key) DO UPDATE SET reason = EXCLUDED.reason
         WHERE suppressions.reason IN ('consent-withdrawn', 'unsubscribed')",
    )
    .bind(delivery.tenant_id)
    .bind(email_key)
    .bind(delivery.person_id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn is_suppressed(
    tx: &mut PgConnection,
    tenant: TenantId,
    email_key: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM suppressions WHERE tenant_id = $1 AND email_key = $2)",
    )
    .bind(tenant)
    .bind(email_key)
    .fetch_one(&mut *tx)
    .await
}

/// Writes `messaging.delivery.complained` to the outbox.
async fn announce_complaint(
    tx: &mut PgConnection,
    delivery: &Delivery,
    report: &Report,
) -> sqlx::Result<()> {
    let event = DeliveryComplained {
        person_id: delivery.person_id.to_string(),
        email: delivery.email.clone(),
        campaign_id: delivery.campaign_id.to_string(),
        delivery_id: delivery.id.to_string(),
        time: Some(muster_runtime::time::to_proto(chrono::Utc::now())),
        provider: report.format.as_str().into(),
    };
    let outgoing = Outgoing {
        tenant_id: delivery.tenant_id,
        destination: Destination::Event,
        routing_key: COMPLAINED,
        message_type: "muster.events.v1.DeliveryComplained",
    };
    outgoing.enqueue_one(tx, event.encode_to_vec()).await
}

fn kind_to_proto(kind: Kind) -> pb::BounceKind {
    match kind {
        Kind::Permanent => pb::BounceKind::Permanent,
        Kind::Transient => pb::BounceKind::Transient,
        Kind::Complaint => pb::BounceKind::Complaint,
    }
}

fn hex_sha256(raw: &[u8]) -> String {
    Sha256::digest(raw)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use muster_runtime::config::DatabaseSettings;
    use muster_runtime::db;

    use super::*;
    use crate::bounces::Format;

    const SETTINGS: BounceSettings = BounceSettings {
        transient_limit: 2,
        transient_window_days: 7,
    };

    /// A fresh messaging database holding one sent delivery.
    async fn one_delivery() -> anyhow::Result<(PgPool, DatabaseSettings, Delivery)> {
        let settings = muster_testkit::fresh_database("bounces").await?;
        let pool = db::connect(&settings).await?;
        db::migrate(&pool, crate::MIGRATIONS).await?;
        let delivery = Delivery {
            id: Uuid::now_v7(),
            tenant_id: TenantId::new(),
            campaign_id: Uuid::now_v7(),
            person_id: Uuid::now_v7(),
            email: "Nadia.Benali@example.org".into(),
        };
        let template = Uuid::now_v7();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO templates (id, tenant_id, name, subject, text_body)
             VALUES ('{template}', '{tenant}', 't', 's', 'b');
             INSERT INTO campaigns (id, tenant_id, name, template_id, segment, from_email, state)
             VALUES ('{campaign}', '{tenant}', 'c', '{template}', '', 'e@example.org',
                     'completed');
             INSERT INTO deliveries (id, tenant_id, campaign_id, person_id, email, state)
             VALUES ('{id}', '{tenant}', '{campaign}', '{person}', '{email}', 'sent');",
            tenant = delivery.tenant_id,
            campaign = delivery.campaign_id,
            id = delivery.id,
            person = delivery.person_id,
            email = delivery.email,
        )))
        .execute(&pool)
        .await?;
        Ok((pool, settings, delivery))
    }

    fn report(kind: Kind) -> Report {
        let mut report = Report::new(Format::Dsn);
        report.bounces.push(Bounce {
            kind,
            recipient: None,
            status: None,
            reason: "test".into(),
        });
        report
    }

    async fn apply(pool: &PgPool, delivery: &Delivery, kind: Kind, raw: &str) -> Outcome {
        let report = report(kind);
        let mut tx = pool.begin().await.unwrap();
        let bounce = &report.bounces[0];
        let outcome = record(&mut tx, &SETTINGS, delivery, &report, bounce, raw)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        outcome
    }

    async fn reason(pool: &PgPool) -> Option<String> {
        sqlx::query_scalar("SELECT reason FROM suppressions WHERE email_key = $1")
            .bind("nadia.benali@example.org")
            .fetch_optional(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn transient_bounces_older_than_the_window_do_not_count() -> anyhow::Result<()> {
        let (pool, settings, delivery) = one_delivery().await?;

        apply(&pool, &delivery, Kind::Transient, "old").await;
        sqlx::query("UPDATE bounces SET received_at = now() - interval '8 days'")
            .execute(&pool)
            .await?;
        let second = apply(&pool, &delivery, Kind::Transient, "second").await;
        assert!(!second.suppressed, "the old bounce was counted");
        assert_eq!(reason(&pool).await, None);

        let third = apply(&pool, &delivery, Kind::Transient, "third").await;
        assert!(third.suppressed);
        assert_eq!(reason(&pool).await.as_deref(), Some("bounced"));

        pool.close().await;
        muster_testkit::drop_database(&settings).await
    }

    #[tokio::test]
    async fn the_same_report_twice_is_recorded_and_counted_once() -> anyhow::Result<()> {
        let (pool, settings, delivery) = one_delivery().await?;

        let first = apply(&pool, &delivery, Kind::Transient, "same").await;
        let again = apply(&pool, &delivery, Kind::Transient, "same").await;

        assert!(!first.duplicate && again.duplicate);
        assert!(!again.suppressed, "a repeated report reached the limit");
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM bounces")
            .fetch_one(&pool)
            .await?;
        assert_eq!(stored, 1);

        pool.close().await;
        muster_testkit::drop_database(&settings).await
    }

    #[tokio::test]
    async fn a_complaint_outranks_an_unsubscribe_and_is_announced_once() -> anyhow::Result<()> {
        let (pool, settings, delivery) = one_delivery().await?;
        sqlx::query(
            "INSERT INTO suppressions (tenant_id, email_key, person_id, reason)
             VALUES ($1, 'nadia.benali@example.org', $2, 'unsubscribed')",
        )
        .bind(delivery.tenant_id)
        .bind(delivery.person_id)
        .execute(&pool)
        .await?;

        let complaint = apply(&pool, &delivery, Kind::Complaint, "fbl").await;
        apply(&pool, &delivery, Kind::Complaint, "fbl").await;
        apply(&pool, &delivery, Kind::Permanent, "dsn").await;

        assert!(complaint.suppressed);
        assert_eq!(reason(&pool).await.as_deref(), Some("complained"));
        let announced: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT routing_key, body FROM outbox")
                .fetch_all(&pool)
                .await?;
        assert_eq!(announced.len(), 1, "{announced:?}");
        assert_eq!(announced[0].0, COMPLAINED);
        let event = DeliveryComplained::decode(announced[0].1.as_slice())?;
        assert_eq!(event.delivery_id, delivery.id.to_string());
        assert_eq!(event.person_id, delivery.person_id.to_string());

        pool.close().await;
        muster_testkit::drop_database(&settings).await
    }
}
