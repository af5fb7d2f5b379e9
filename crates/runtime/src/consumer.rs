//! Consuming: bounded prefetch, manual acks after the effect has committed,
//! and poison messages dead-lettered without holding back the others.
//! [`begin_once`] makes an effect idempotent through the inbox table.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::TenantId;
use crate::bus::{self, Bus};
use crate::config::AmqpSettings;

/// A message taken from a queue, its envelope checked.
#[derive(Debug)]
pub struct Incoming {
    pub message_id: Uuid,
    pub tenant_id: TenantId,
    pub message_type: String,
    pub routing_key: String,
    pub body: Vec<u8>,
}

/// Why a message could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Retrying cannot help (undecodable, refers to nothing): dead-letter now.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
    /// Retry later; dead-lettered after the queue's delivery limit.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
}

impl From<sqlx::Error> for HandleError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(error.into())
    }
}

/// Applies one message's effect.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, message: Incoming) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// How a queue is consumed.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Logical queue name.
    pub queue: &'static str,
    /// Messages handled at once (and unacked messages held).
    pub concurrency: u16,
}

/// Consumes until `shutdown`, then finishes in-flight messages and returns;
/// reconnects after broker failures.
pub async fn run<H: Handler>(
    amqp: AmqpSettings,
    options: ConsumerOptions,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        if let Err(error) = consume(&amqp, &options, &handler, &shutdown).await {
            tracing::warn!(
                queue = options.queue,
                error = format!("{error:#}"),
                "consumer failed; reconnecting in 1s"
            );
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn consume<H: Handler>(
    amqp: &AmqpSettings,
    options: &ConsumerOptions,
    handler: &Arc<H>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let bus = Bus::connect(amqp, options.queue).await?;
    let channel = bus.channel().await?;
    channel
        .basic_qos(options.concurrency, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            bus.name(options.queue).into(),
            format!("{}-{}", options.queue, Uuid::now_v7()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = options.queue, "consuming");

    consumer
        .take_until(shutdown.cancelled())
        .for_each_concurrent(options.concurrency as usize, |delivery| {
            let handler = handler.clone();
            let queue = options.queue;
            async move {
                match delivery {
                    Ok(delivery) => process(queue, &*handler, delivery).await,
                    Err(error) => tracing::warn!(queue, %error, "delivery stream error"),
                }
            }
        })
        .await;

    let lost = !channel.status().connected();
    if !lost {
        let _ = channel.close(200, "draining".into()).await;
    }
    bus.close().await;
    if lost && !shutdown.is_cancelled() {
        anyhow::bail!("the channel to the broker was lost");
    }
    Ok(())
}

async fn process<H: Handler>(queue: &str, handler: &H, delivery: Delivery) {
    let outcome = match envelope(&delivery) {
        Ok(message) => {
            let message_id = message.message_id;
            let outcome = handler.handle(message).await;
            if let Err(error) = &outcome {
                tracing::warn!(queue, %message_id, error = %error, "message not handled");
            }
            outcome
        }
        Err(error) => {
            tracing::warn!(
                queue,
                error = format!("{error:#}"),
                "message has a bad envelope"
            );
            Err(HandleError::Permanent(error))
        }
    };

    let acked = match outcome {
        Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
        Err(HandleError::Permanent(_)) => {
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: false,
                    ..Default::default()
                })
                .await
        }
        Err(HandleError::Transient(_)) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
        }
    };
    if let Err(error) = acked {
        tracing::warn!(queue, %error, "acknowledgement not sent; the message will be redelivered");
    }
}

fn envelope(delivery: &Delivery) -> anyhow::Result<Incoming> {
    let properties = &delivery.properties;
    let message_id = properties
        .message_id()
        .as_ref()
        .and_then(|id| Uuid::parse_str(id.as_str()).ok())
        .ok_or_else(|| anyhow::anyhow!("missing or malformed message_id"))?;
    let tenant_id = bus::header(properties, "tenant_id")
        .and_then(|id| Uuid::parse_str(&id).ok())
        .map(TenantId::from_uuid)
        .ok_or_else(|| anyhow::anyhow!("missing or malformed tenant_id header"))?;
    Ok(Incoming {
        message_id,
        tenant_id,
        message_type: properties
            .kind()
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default(),
        routing_key: delivery.routing_key.to_string(),
        body: delivery.data.clone(),
    })
}

/// Begins the transaction that applies `message_id` for `consumer`, or
/// returns `None` when it was applied already (a redelivery).
pub async fn begin_once(
    pool: &PgPool,
    consumer: &str,
    message_id: Uuid,
) -> sqlx::Result<Option<Transaction<'static, Postgres>>> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    Ok(Some(tx))
}
