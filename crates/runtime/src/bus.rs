//! RabbitMQ: the connection, this deployment's names, and the topology —
//! one topic exchange for domain events, durable quorum work queues with a
//! delivery limit, a dead-letter queue each and an optional delay queue for
//! retries (TTL + dead-letter back; no broker plugin).

use std::time::Duration;

use anyhow::Context;
use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::config::AmqpSettings;

/// The topic exchange every domain event is published to.
pub const EVENTS_EXCHANGE: &str = "muster.events";
const DEAD_EXCHANGE: &str = "muster.dead";

/// A work or event queue and what it receives.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// Logical name, e.g. `messaging.email.send`.
    pub name: &'static str,
    /// Event routing keys (patterns) bound from the events exchange.
    pub bindings: &'static [&'static str],
    /// Back-off ladder: `<name>.retry.<i>` holds a message `retry_delays[i]`,
    /// then returns it to the queue.
    pub retry_delays: &'static [Duration],
}

/// One AMQP connection and the names under this deployment's prefix.
pub struct Bus {
    connection: Connection,
    settings: AmqpSettings,
}

impl Bus {
    /// Connects; `name` shows in the broker's connection list.
    pub async fn connect(settings: &AmqpSettings, name: &str) -> anyhow::Result<Self> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection = Connection::connect(&settings.url, properties).await.with_context(|| {
            "connecting to RabbitMQ (amqp.url); is it running? `deploy/local/services.sh` starts it"
        })?;
        Ok(Self {
            connection,
            settings: settings.clone(),
        })
    }

    /// The settings this bus was opened with.
    pub fn settings(&self) -> &AmqpSettings {
        &self.settings
    }

    /// A broker-side name for `logical` under this deployment's prefix.
    pub fn name(&self, logical: &str) -> String {
        format!("{}{logical}", self.settings.prefix)
    }

    /// A new channel.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        self.connection
            .create_channel()
            .await
            .context("opening an AMQP channel")
    }

    /// A new channel in publisher-confirm mode.
    pub async fn confirm_channel(&self) -> anyhow::Result<Channel> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        Ok(channel)
    }

    /// Declares the events exchange, the dead-letter exchange and `queues`.
    /// Declaring is idempotent; every process does it at start-up.
    pub async fn declare(&self, queues: &[QueueSpec]) -> anyhow::Result<()> {
        let channel = self.channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                self.name(EVENTS_EXCHANGE).into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .context("declaring the events exchange")?;
        channel
            .exchange_declare(
                self.name(DEAD_EXCHANGE).into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .context("declaring the dead-letter exchange")?;
        for spec in queues {
            self.declare_queue(&channel, spec).await.with_context(|| {
                let name = self.name(spec.name);
                format!(
                    "declaring queue {name}; if an older version declared it with other \
                         arguments, drain it and remove it (rabbitmqctl delete_queue {name})"
                )
            })?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    async fn declare_queue(&self, channel: &Channel, spec: &QueueSpec) -> anyhow::Result<()> {
        let queue = self.name(spec.name);
        let dead = format!("{queue}.dead");
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };

        self.declare_dead_letters(&dead).await?;
        channel
            .queue_bind(
                dead.as_str().into(),
                self.name(DEAD_EXCHANGE).into(),
                queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut arguments = quorum();
        arguments.insert(
            "x-delivery-limit".into(),
            long(self.settings.delivery_limit as i64),
        );
        arguments.insert(
            "x-dead-letter-exchange".into(),
            text(&self.name(DEAD_EXCHANGE)),
        );
        arguments.insert("x-dead-letter-routing-key".into(), text(&queue));
        channel
            .queue_declare(queue.as_str().into(), options, arguments)
            .await?;
        for key in spec.bindings {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.name(EVENTS_EXCHANGE).into(),
                    (*key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }

        for (step, delay) in spec.retry_delays.iter().enumerate() {
            let mut arguments = quorum();
            arguments.insert("x-message-ttl".into(), long(delay.as_millis() as i64));
            arguments.insert("x-dead-letter-exchange".into(), text(""));
            arguments.insert("x-dead-letter-routing-key".into(), text(&queue));
            let retry = retry_queue(&queue, step);
            channel
                .queue_declare(retry.as_str().into(), options, arguments)
                .await?;
        }
        Ok(())
    }

    /// Declares the dead-letter queue `dead`, whose messages expire after
    /// `dead_letter_days`. One declared before that retention existed keeps
    /// its arguments (the broker refuses to change them) with a warning, so
    /// that an upgrade neither stops nor loses the letters it holds.
    async fn declare_dead_letters(&self, dead: &str) -> anyhow::Result<()> {
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let mut arguments = quorum();
        let retention = u64::from(self.settings.dead_letter_days.max(1)) * 86_400_000;
        arguments.insert("x-message-ttl".into(), long(retention as i64));
        let channel = self.connection.create_channel().await?;
        match channel.queue_declare(dead.into(), options, arguments).await {
            Ok(_) => {
                let _ = channel.close(200, "declared".into()).await;
                Ok(())
            }
            Err(error) if is_precondition_failed(&error) => {
                let channel = self.connection.create_channel().await?;
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..options
                };
                channel
                    .queue_declare(dead.into(), passive, FieldTable::default())
                    .await?;
                let _ = channel.close(200, "declared".into()).await;
                tracing::warn!(
                    queue = dead,
                    "dead-letter queue declared without retention: its letters are kept until \
                     purged; once it is empty, delete it (rabbitmqctl delete_queue) and restart \
                     to apply amqp.dead_letter_days"
                );
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Closes the connection, letting in-flight acks go out first.
    pub async fn close(&self) {
        let _ = self.connection.close(200, "shutting down".into()).await;
    }
}

/// Whether the broker refused a declaration for arguments other than those
/// the queue already has.
fn is_precondition_failed(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e)
            if matches!(e.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED))
    )
}

/// The name of step `step` of `queue`'s retry ladder.
pub fn retry_queue(queue: &str, step: usize) -> String {
    format!("{queue}.retry.{step}")
}

/// A quorum queue whose dead letters are kept until the target confirms
/// them (at-least-once), so that a retry is never dropped on the way back.
fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), text("quorum"));
    arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    arguments.insert("x-overflow".into(), text("reject-publish"));
    arguments
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn long(value: i64) -> AMQPValue {
    AMQPValue::LongLongInt(value)
}

/// A header of an incoming message as text.
pub fn header(properties: &lapin::BasicProperties, key: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(key))? {
        AMQPValue::LongString(value) => Some(String::from_utf8_lossy(value.as_bytes()).into()),
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        _ => None,
    }
}

/// A header value for an outgoing message.
pub fn header_value(value: &str) -> AMQPValue {
    text(value)
}

/// The back-off of e-mail sends the server deferred: 5 s, 30 s, 2 min, 10 min.
pub const EMAIL_SEND_RETRY_DELAYS: &[Duration] = &[
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
];

/// Every queue of the system and what feeds it. Each process declares all of
/// them at start-up, so that no event is lost to a queue not yet declared
/// because its consumer started later.
pub const TOPOLOGY: &[QueueSpec] = &[
    QueueSpec {
        name: "contacts.unsubscribes",
        bindings: &[
            "messaging.delivery.unsubscribed",
            "messaging.delivery.complained",
        ],
        retry_delays: &[],
    },
    QueueSpec {
        name: "messaging.consent",
        bindings: &["contacts.consent.changed"],
        retry_delays: &[],
    },
    QueueSpec {
        name: "messaging.erasures",
        bindings: &["contacts.person.erased"],
        retry_delays: &[],
    },
    QueueSpec {
        name: "messaging.merges",
        bindings: &["contacts.person.merged"],
        retry_delays: &[],
    },
    QueueSpec {
        name: "contacts.erasure-confirmations",
        bindings: &["messaging.person.erased"],
        retry_delays: &[],
    },
    QueueSpec {
        name: "messaging.email.send",
        bindings: &[],
        retry_delays: EMAIL_SEND_RETRY_DELAYS,
    },
    // What contacts projects for segments: sends, donations, attendance.
    QueueSpec {
        name: "contacts.contacted",
        bindings: &["messaging.delivery.sent"],
        retry_delays: &[],
    },
    QueueSpec {
        name: "contacts.donations",
        bindings: &["donations.donation.succeeded"],
        retry_delays: &[],
    },
    QueueSpec {
        name: "contacts.attendance",
        bindings: &["events.attendance.changed"],
        retry_delays: &[],
    },
    // Double opt-in: messaging e-mails the confirmation link of a pending consent.
    QueueSpec {
        name: "messaging.consent-confirmations",
        bindings: &["contacts.consent.confirmation_requested"],
        retry_delays: EMAIL_SEND_RETRY_DELAYS,
    },
];
