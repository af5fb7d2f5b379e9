//! The transactional outbox: a service writes its state change and the
//! message announcing it in one transaction; the relay publishes committed
//! messages with publisher confirms and deletes each only once the broker
//! has acknowledged it. Nothing is published from a request handler.

use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::TenantId;
use crate::bus::{self, Bus, EVENTS_EXCHANGE};
use crate::config::AmqpSettings;

const NOTIFY_CHANNEL: &str = "muster_outbox";

/// Where an outbox message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The events exchange, routed by key to every interested service.
    Event,
    /// Straight to the work queue named by the routing key.
    Queue,
}

impl Destination {
    fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Queue => "queue",
        }
    }
}

/// Messages of one kind to publish once the surrounding transaction commits.
pub struct Outgoing<'a> {
    pub tenant_id: TenantId,
    pub destination: Destination,
    pub routing_key: &'a str,
    /// The protobuf message name, e.g. `muster.events.v1.ConsentChanged`.
    pub message_type: &'a str,
}

impl Outgoing<'_> {
    /// Writes `bodies` to the outbox inside the caller's transaction.
    pub async fn enqueue(&self, tx: &mut PgConnection, bodies: Vec<Vec<u8>>) -> sqlx::Result<()> {
        if bodies.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = bodies.iter().map(|_| Uuid::now_v7()).collect();
        sqlx::query(
            "INSERT INTO outbox
                (message_id, tenant_id, destination, routing_key, message_type, body)
             SELECT id, $2, $3, $4, $5, body FROM UNNEST($1::uuid[], $6::bytea[]) AS t(id, body)",
        )
        .bind(&ids)
        .bind(self.tenant_id)
        .bind(self.destination.as_str())
        .bind(self.routing_key)
        .bind(self.message_type)
        .bind(&bodies)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// Writes one message.
    pub async fn enqueue_one(&self, tx: &mut PgConnection, body: Vec<u8>) -> sqlx::Result<()> {
        self.enqueue(tx, vec![body]).await
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    message_id: Uuid,
    tenant_id: Uuid,
    destination: String,
    routing_key: String,
    message_type: String,
    body: Vec<u8>,
    traceparent: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// Publishes committed outbox rows.
pub struct Relay {
    pool: PgPool,
    amqp: AmqpSettings,
    batch: i64,
}

impl Relay {
    /// A relay over `pool`'s outbox to the broker of `amqp`.
    pub fn new(pool: PgPool, amqp: AmqpSettings) -> Self {
        Self {
            pool,
            amqp,
            batch: 500,
        }
    }

    /// Runs until `shutdown`; reconnects after broker or database failures.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.run_connected(&shutdown).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "outbox relay failed; retrying in 1s"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    async fn run_connected(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let bus = Bus::connect(&self.amqp, "outbox-relay").await?;
        let channel = bus.confirm_channel().await?;
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;

        loop {
            let published = self.publish_batch(&bus, &channel).await?;
            if published as i64 == self.batch {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                notified = listener.recv() => { notified.context("listening for outbox rows")?; }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        bus.close().await;
        Ok(())
    }

    /// Publishes one batch; returns how many rows were published and deleted.
    async fn publish_batch(&self, bus: &Bus, channel: &Channel) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, message_id, tenant_id, destination, routing_key, message_type, body,
                    traceparent, created_at
             FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }

        let events = bus.name(EVENTS_EXCHANGE);
        let mut confirms = Vec::with_capacity(rows.len());
        for row in &rows {
            let (exchange, routing_key) = match row.destination.as_str() {
                "event" => (events.clone(), row.routing_key.clone()),
                _ => (String::new(), bus.name(&row.routing_key)),
            };
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &row.body,
                    properties(row),
                )
                .await
                .context("publishing an outbox message")?;
            confirms.push(confirm);
        }

        let mut acked = Vec::with_capacity(rows.len());
        for (row, confirmation) in rows.iter().zip(join_all(confirms).await) {
            match confirmation.context("waiting for a publisher confirm")? {
                Confirmation::Ack(_) | Confirmation::NotRequested => acked.push(row.id),
                Confirmation::Nack(_) => {
                    let message_id = row.message_id;
                    tracing::warn!(%message_id, "broker refused a message; will retry")
                }
            }
        }
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&acked)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::debug!(published = acked.len(), "outbox batch published");
        Ok(acked.len())
    }
}

fn properties(row: &Row) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "tenant_id".into(),
        bus::header_value(&row.tenant_id.to_string()),
    );
    if let Some(traceparent) = &row.traceparent {
        headers.insert("traceparent".into(), bus::header_value(traceparent));
    }
    BasicProperties::default()
        .with_message_id(row.message_id.to_string().into())
        .with_type(row.message_type.as_str().into())
        .with_timestamp(row.created_at.timestamp().max(0) as u64)
        .with_content_type("application/x-protobuf".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}
