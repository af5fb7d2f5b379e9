//! The bus against a real RabbitMQ and PostgreSQL: the outbox relay, the
//! consumer's dead-lettering, and applying a redelivered message once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use muster_runtime::TenantId;
use muster_runtime::bus::{self, Bus, TOPOLOGY};
use muster_runtime::consumer::{self, ConsumerOptions, HandleError, Handler, Incoming};
use muster_runtime::outbox::{Destination, Outgoing, Relay};
use tokio_util::sync::CancellationToken;

const QUEUE: &str = "contacts.unsubscribes";

/// Accepts bodies, refuses "poison" for good and "flaky" for now.
#[derive(Default, Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Handler for Recorder {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let body = String::from_utf8_lossy(&message.body).into_owned();
        match body.as_str() {
            "poison" => Err(HandleError::Permanent(anyhow::anyhow!("cannot decode"))),
            "flaky" => Err(HandleError::Transient(anyhow::anyhow!("database away"))),
            _ => {
                self.seen.lock().unwrap().push(body);
                Ok(())
            }
        }
    }
}

async fn publish(bus: &Bus, body: &str) -> anyhow::Result<()> {
    let channel = bus.confirm_channel().await?;
    let mut headers = FieldTable::default();
    headers.insert(
        "tenant_id".into(),
        bus::header_value(&TenantId::new().to_string()),
    );
    let properties = BasicProperties::default()
        .with_message_id(uuid::Uuid::now_v7().to_string().into())
        .with_headers(headers);
    channel
        .basic_publish(
            "".into(),
            bus.name(QUEUE).into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await?
        .await?;
    Ok(())
}

async fn depth(bus: &Bus, queue: &str) -> anyhow::Result<u32> {
    let channel = bus.channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    Ok(queue.message_count())
}

#[tokio::test]
async fn poison_and_endlessly_failing_messages_are_dead_lettered_without_holding_back_others()
-> anyhow::Result<()> {
    let amqp = muster_testkit::fresh_amqp();
    let bus = Bus::connect(&amqp, "test").await?;
    bus.declare(TOPOLOGY).await?;
    publish(&bus, "poison").await?;
    publish(&bus, "flaky").await?;
    for n in 0..20 {
        publish(&bus, &format!("good {n}")).await?;
    }

    let recorder = Recorder::default();
    let stop = CancellationToken::new();
    let options = ConsumerOptions {
        queue: QUEUE,
        concurrency: 4,
    };
    let consuming = tokio::spawn(consumer::run(
        amqp.clone(),
        options,
        Arc::new(recorder.clone()),
        stop.clone(),
    ));

    let dead = format!("{}.dead", bus.name(QUEUE));
    let mut dead_count = 0;
    for _ in 0..200 {
        dead_count = depth(&bus, &dead).await?;
        if dead_count == 2 && recorder.seen.lock().unwrap().len() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    consuming.await?;
    assert_eq!(
        recorder.seen.lock().unwrap().len(),
        20,
        "good messages were held back"
    );
    assert_eq!(
        dead_count, 2,
        "poison and flaky messages should be dead-lettered"
    );
    assert_eq!(depth(&bus, &bus.name(QUEUE)).await?, 0);
    muster_testkit::drop_topology(&amqp).await
}

#[tokio::test]
async fn the_relay_publishes_every_committed_message_once_and_none_rolled_back()
-> anyhow::Result<()> {
    let database = muster_testkit::fresh_database("runtime").await?;
    let pool = muster_runtime::db::connect(&database).await?;
    muster_runtime::db::migrate(&pool, &[]).await?;
    let amqp = muster_testkit::fresh_amqp();
    let bus = Bus::connect(&amqp, "test").await?;
    bus.declare(TOPOLOGY).await?;

    let outgoing = Outgoing {
        tenant_id: TenantId::new(),
        destination: Destination::Queue,
        routing_key: QUEUE,
        message_type: "test",
    };
    let mut committed = pool.begin().await?;
    let bodies: Vec<Vec<u8>> = (0..1_200)
        .map(|n| format!("good {n}").into_bytes())
        .collect();
    outgoing.enqueue(&mut committed, bodies).await?;
    committed.commit().await?;
    let mut rolled_back = pool.begin().await?;
    outgoing
        .enqueue_one(&mut rolled_back, b"never".to_vec())
        .await?;
    rolled_back.rollback().await?;

    let stop = CancellationToken::new();
    let relay = tokio::spawn(Relay::new(pool.clone(), amqp.clone()).run(stop.clone()));
    let recorder = Recorder::default();
    let options = ConsumerOptions {
        queue: QUEUE,
        concurrency: 16,
    };
    let consuming = tokio::spawn(consumer::run(
        amqp.clone(),
        options,
        Arc::new(recorder.clone()),
        stop.clone(),
    ));
    for _ in 0..300 {
        if recorder.seen.lock().unwrap().len() >= 1_200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    relay.await?;
    consuming.await?;

    let seen = recorder.seen.lock().unwrap().clone();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 1_200, "every committed message once");
    assert_eq!(unique.len(), 1_200);
    assert!(
        !seen.iter().any(|body| body == "never"),
        "a rolled-back message was published"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await?;
    assert_eq!(left, 0, "acknowledged messages are deleted from the outbox");

    pool.close().await;
    muster_testkit::drop_database(&database).await?;
    muster_testkit::drop_topology(&amqp).await
}

#[tokio::test]
async fn a_redelivered_message_is_applied_once() -> anyhow::Result<()> {
    let database = muster_testkit::fresh_database("runtime").await?;
    let pool = muster_runtime::db::connect(&database).await?;
    muster_runtime::db::migrate(&pool, &[]).await?;
    let id = uuid::Uuid::now_v7();

    let first = consumer::begin_once(&pool, "test", id)
        .await?
        .expect("first delivery applies");
    first.commit().await?;
    assert!(
        consumer::begin_once(&pool, "test", id).await?.is_none(),
        "redelivery applied twice"
    );
    let other = consumer::begin_once(&pool, "another consumer", id).await?;
    assert!(other.is_some(), "each consumer applies a message once");
    drop(other);

    pool.close().await;
    muster_testkit::drop_database(&database).await
}

/// Declares `queue` as a dead-letter queue with a retention of `days`
/// (none: as before retention existed), on a channel of its own: the broker
/// refuses, closing the channel, when the queue exists with other arguments.
async fn declare_dead(bus: &Bus, queue: &str, days: Option<u32>) -> Result<(), lapin::Error> {
    use lapin::types::{AMQPValue, LongString};
    let text = |value: &str| AMQPValue::LongString(LongString::from(value));
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), text("quorum"));
    arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    arguments.insert("x-overflow".into(), text("reject-publish"));
    if let Some(days) = days {
        let ttl = i64::from(days) * 86_400_000;
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
    }
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let channel = bus.channel().await.expect("a channel");
    channel
        .queue_declare(queue.into(), options, arguments)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn dead_letters_expire_after_the_configured_days_and_an_older_queue_is_kept()
-> anyhow::Result<()> {
    let mut amqp = muster_testkit::fresh_amqp();
    amqp.dead_letter_days = 7;
    let bus = Bus::connect(&amqp, "test").await?;
    bus.declare(TOPOLOGY).await?;
    let dead = format!("{}.dead", bus.name(QUEUE));

    // The broker accepts a declaration only with the arguments the queue has.
    declare_dead(&bus, &dead, Some(7)).await?;
    assert!(declare_dead(&bus, &dead, Some(30)).await.is_err());
    assert!(declare_dead(&bus, &dead, None).await.is_err());
    muster_testkit::drop_topology(&amqp).await?;

    // A dead-letter queue of a version without retention: the service still
    // starts, and the letters in it stay where they are.
    let older = muster_testkit::fresh_amqp();
    let bus = Bus::connect(&older, "test").await?;
    let dead = format!("{}.dead", bus.name(QUEUE));
    declare_dead(&bus, &dead, None).await?;
    let channel = bus.confirm_channel().await?;
    channel
        .basic_publish(
            "".into(),
            dead.as_str().into(),
            BasicPublishOptions::default(),
            b"an old letter",
            BasicProperties::default(),
        )
        .await?
        .await?;
    bus.declare(TOPOLOGY).await?;
    declare_dead(&bus, &dead, None).await?;
    assert_eq!(depth(&bus, &dead).await?, 1);
    muster_testkit::drop_topology(&older).await
}
