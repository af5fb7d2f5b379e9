//! Last contacted end to end: messaging announces what it sent, one event
//! per group of deliveries, and contacts projects it into segments.

use std::collections::HashSet;
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use muster_e2e::Stack;
use muster_proto::contacts::v1 as contacts;
use muster_proto::events::v1::DeliveriesSent;
use muster_runtime::TenantId;
use muster_runtime::bus::{self, Bus};
use prost::Message;

const PEOPLE: usize = 120;

#[tokio::test]
async fn a_campaign_marks_everyone_it_reached_as_contacted_in_one_event_per_group()
-> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();

    // A queue of this test's own sees every announcement of the send.
    let bus = Bus::connect(&stack.amqp, "contacted-test").await?;
    let channel = bus.channel().await?;
    let watch = bus.name("test.delivery-sent");
    channel
        .queue_declare(
            watch.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            watch.as_str().into(),
            bus.name(bus::EVENTS_EXCHANGE).as_str().into(),
            "messaging.delivery.sent".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let file = std::env::temp_dir().join(format!("contacted-{}.csv", muster_testkit::unique()));
    let mut csv = String::from("email,consent,consent_time\n");
    for n in 0..PEOPLE {
        csv.push_str(&format!("p{n}@example.org,oui,2026-01-01 10:00\n"));
    }
    // One more person, without consent: never sent anything.
    csv.push_str("silent@example.org,non,\n");
    std::fs::write(&file, csv)?;
    let mapping = contacts::ColumnMapping {
        email: "email".into(),
        email_consent: "consent".into(),
        email_consent_time: "consent_time".into(),
        ..Default::default()
    };
    let job = stack.import_custom(tenant, &file, mapping).await?;
    std::fs::remove_file(&file)?;
    assert_eq!(
        job.counts.unwrap().consent_granted,
        PEOPLE as u64,
        "{job:?}"
    );

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!(done.counts.unwrap().sent, PEOPLE as u64);

    let mut client = stack.contacts(tenant).await?;
    let count = |query: &str| contacts::CountSegmentRequest {
        filter: Some(contacts::SegmentFilter {
            query: query.into(),
            ..Default::default()
        }),
    };
    let mut contacted = 0;
    for _ in 0..200 {
        contacted = client
            .count_segment(count("has:contacted"))
            .await?
            .into_inner()
            .count;
        if contacted == PEOPLE as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(contacted, PEOPLE as u64);
    let never = client
        .count_segment(count("NOT has:contacted"))
        .await?
        .into_inner();
    assert_eq!(never.count, 1);
    // Sent within the last hour, in the database's clock.
    let hour_ago: String = sqlx::query_scalar(
        "SELECT to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .fetch_one(&stack.contacts_pool)
    .await?;
    let recent = client
        .count_segment(count(&format!("contacted>={hour_ago}")))
        .await?
        .into_inner();
    assert_eq!(recent.count, PEOPLE as u64);

    let mut events = 0;
    let mut people = HashSet::new();
    while let Some(message) = channel
        .basic_get(watch.as_str().into(), BasicGetOptions { no_ack: true })
        .await?
    {
        let event = DeliveriesSent::decode(message.delivery.data.as_slice())?;
        assert_eq!(event.campaign_id, campaign.id);
        events += 1;
        for delivery in event.deliveries {
            assert!(
                people.insert(delivery.person_id),
                "a person announced twice"
            );
        }
    }
    assert_eq!(people.len(), PEOPLE);
    let group = stack.messaging_settings.sender.group_size as usize;
    assert!(
        group > 1,
        "the default sender group sends several messages at once"
    );
    assert!(
        (PEOPLE.div_ceil(group)..PEOPLE).contains(&events),
        "{events} events for {PEOPLE} sends in groups of {group}"
    );

    channel
        .queue_delete(watch.as_str().into(), Default::default())
        .await?;
    bus.close().await;
    stack.stop().await
}
