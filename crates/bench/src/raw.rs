//! The raw ceilings: what the broker and the SMTP sink take with nothing of
//! Muster in the way, with the same client libraries and message sizes.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lettre::Message;
use lettre::message::{Mailbox, SinglePart};
use muster_messaging::smtp::{Relay, SmtpSettings};
use muster_runtime::bus::{Bus, TOPOLOGY};
use muster_testkit::SmtpSink;
use tokio::sync::Semaphore;

use crate::Rate;

/// SMTP connections, as many as the end-to-end run's sender keeps.
const SMTP_POOL: u32 = crate::campaign::SMTP_POOL;

/// Deliveries per send job, as messaging batches them.
pub const JOB_DELIVERIES: usize = 100;

/// The size of a send job's body: a campaign id and 100 delivery ids.
pub fn send_job_size() -> usize {
    let id = || uuid::Uuid::now_v7().to_string();
    let job = muster_proto::events::v1::SendJob {
        campaign_id: id(),
        delivery_ids: (0..JOB_DELIVERIES).map(|_| id()).collect(),
    };
    prost::Message::encoded_len(&job)
}

/// A message like the campaign's, prebuilt once.
pub fn sample_email() -> Vec<u8> {
    build_email().formatted()
}

fn build_email() -> Message {
    let body =
        "Bonjour Zoé,\n\nLa rentrée militante commence : retrouvez-nous samedi.\n".repeat(12);
    Message::builder()
        .from(
            "Muster <equipe@example.org>"
                .parse()
                .expect("a valid address"),
        )
        .to(Mailbox::new(
            None,
            "zoe@example.org".parse().expect("a valid address"),
        ))
        .subject("Rendez-vous samedi")
        .singlepart(SinglePart::plain(body))
        .expect("a valid message")
}

/// Publishes `count` messages of `size` bytes with confirms to a quorum
/// queue while a consumer acks them; the rate is over the last ack.
pub async fn broker(count: u64, size: usize) -> anyhow::Result<Rate> {
    let amqp = muster_testkit::fresh_amqp();
    let bus = Bus::connect(&amqp, "bench").await?;
    bus.declare(TOPOLOGY).await?;
    let queue = bus.name("messaging.email.send");
    let body = vec![b'x'; size];

    let consumer_channel = bus.channel().await?;
    consumer_channel
        .basic_qos(64, BasicQosOptions::default())
        .await?;
    let mut consumer = consumer_channel
        .basic_consume(
            queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let started = Instant::now();
    let publisher = bus.confirm_channel().await?;
    let publishing = tokio::spawn(async move {
        let mut pending = Vec::with_capacity(500);
        for _ in 0..count {
            let confirm = publisher
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            pending.push(confirm);
            if pending.len() == 500 {
                for confirm in pending.drain(..) {
                    confirm.await?;
                }
            }
        }
        for confirm in pending {
            confirm.await?;
        }
        anyhow::Ok(())
    });

    let mut acked = 0;
    while acked < count {
        let delivery = consumer
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("consumer ended"))??;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        acked += 1;
    }
    let elapsed = started.elapsed();
    publishing.await??;
    muster_testkit::drop_topology(&amqp).await?;
    Ok(Rate { count, elapsed })
}

/// Sends `count` prebuilt messages to a fresh `smtp-sink` (writing each to a
/// file, as in the end-to-end run) through messaging's SMTP client, with as
/// many connections and messages in flight as the end-to-end run's sender.
pub async fn smtp(count: u64) -> anyhow::Result<Rate> {
    let sink = SmtpSink::start().await?;
    let relay = Arc::new(Relay::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port(),
        pool_size: SMTP_POOL,
        timeout_secs: 30,
    }));
    let email = build_email();
    let (envelope, message) = (
        Arc::new(email.envelope().clone()),
        Arc::new(email.formatted()),
    );
    let permits = Arc::new(Semaphore::new(SMTP_POOL as usize));

    let started = Instant::now();
    let mut sends = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let permit = permits.clone().acquire_owned().await?;
        let (relay, envelope, message) = (relay.clone(), envelope.clone(), message.clone());
        sends.push(tokio::spawn(async move {
            let sent = relay.send(&envelope, &message).await;
            drop(permit);
            sent
        }));
    }
    for send in sends {
        if let Err(failure) = send.await? {
            anyhow::bail!("the sink did not take a message: {failure:?}");
        }
    }
    let elapsed = started.elapsed();
    relay.close().await;
    let dir = sink.dir().to_owned();
    sink.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(Rate { count, elapsed })
}
