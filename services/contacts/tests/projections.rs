//! Sends, donations and attendance published on a real RabbitMQ, consumed
//! by a real contacts worker into its own PostgreSQL database, and counted
//! by the segment conditions on them against hand-computed numbers.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use muster_contacts::Mode;
use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::person_data_service_client::PersonDataServiceClient;
use muster_proto::events::v1::{
    AttendanceChanged, AttendanceState, DeliveriesSent, DonationSucceeded, SentDelivery,
};
use muster_runtime::TenantId;
use muster_runtime::bus::{self, Bus};
use prost::Message;
use uuid::Uuid;

mod support;

use support::{Client, Service};

fn day(text: &str) -> DateTime<Utc> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    Utc.from_utc_datetime(&date.and_hms_opt(12, 0, 0).unwrap())
}

fn at(text: &str) -> Option<muster_proto::Timestamp> {
    Some(muster_runtime::time::to_proto(day(text)))
}

/// Publishes `body` on the events exchange as another service's outbox would.
async fn publish(
    bus: &Bus,
    tenant: TenantId,
    routing_key: &str,
    message_id: Uuid,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let channel = bus.confirm_channel().await?;
    let mut headers = FieldTable::default();
    headers.insert("tenant_id".into(), bus::header_value(&tenant.to_string()));
    let properties = BasicProperties::default()
        .with_message_id(message_id.to_string().into())
        .with_delivery_mode(2)
        .with_headers(headers);
    channel
        .basic_publish(
            bus.name(bus::EVENTS_EXCHANGE).as_str().into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            &body,
            properties,
        )
        .await?
        .await?;
    Ok(())
}

fn sent(people: &[(Uuid, &str)]) -> Vec<u8> {
    DeliveriesSent {
        campaign_id: Uuid::now_v7().to_string(),
        channel: "email".into(),
        deliveries: people
            .iter()
            .map(|(person, when)| SentDelivery {
                delivery_id: Uuid::now_v7().to_string(),
                person_id: person.to_string(),
                time: at(when),
            })
            .collect(),
    }
    .encode_to_vec()
}

fn donation(id: &str, person: Uuid, cents: i64, currency: &str, when: &str) -> Vec<u8> {
    DonationSucceeded {
        donation_id: id.into(),
        person_id: person.to_string(),
        amount_cents: cents,
        currency: currency.into(),
        time: at(when),
    }
    .encode_to_vec()
}

fn attendance(event: &str, person: Uuid, state: AttendanceState, when: &str) -> Vec<u8> {
    AttendanceChanged {
        event_id: event.into(),
        person_id: person.to_string(),
        state: state as i32,
        time: at(when),
    }
    .encode_to_vec()
}

async fn count(client: &mut Client, query: &str) -> Result<u64, tonic::Status> {
    let request = pb::CountSegmentRequest {
        filter: Some(pb::SegmentFilter {
            query: query.into(),
            ..Default::default()
        }),
    };
    Ok(client.count_segment(request).await?.into_inner().count)
}

#[tokio::test]
async fn sends_donations_and_attendance_from_the_bus_are_counted_by_segments() -> anyhow::Result<()>
{
    let service = Service::start_as("projections", Mode::All).await?;
    let pool = service.pool.clone();

    let tenant = TenantId::new();
    let people: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    for (n, id) in people.iter().enumerate() {
        sqlx::query("INSERT INTO people (id, tenant_id, email, email_key) VALUES ($1, $2, $3, $3)")
            .bind(id)
            .bind(tenant)
            .bind(format!("p{n}@example.org"))
            .execute(&pool)
            .await?;
    }
    let p = |n: usize| people[n];

    let bus = Bus::connect(&service.amqp, "projections-test").await?;
    let mut messages: Vec<(&str, Uuid, Vec<u8>)> = Vec::new();
    let mut add = |key, body| messages.push((key, Uuid::now_v7(), body));
    // p0 last contacted 2024-03-01 (a later event with an older send does
    // not move it back), p1 2024-03-05, p2 2024-04-01; p3..p5 never.
    add(
        "messaging.delivery.sent",
        sent(&[(p(0), "2024-03-01"), (p(1), "2024-03-05")]),
    );
    add(
        "messaging.delivery.sent",
        sent(&[(p(0), "2024-02-01"), (p(2), "2024-04-01")]),
    );
    // EUR totals: p0 50 + 25 = 75 (d2 announced twice), p2 10; p1 100 USD.
    add(
        "donations.donation.succeeded",
        donation("d1", p(0), 5_000, "EUR", "2024-01-10"),
    );
    add(
        "donations.donation.succeeded",
        donation("d2", p(0), 2_500, "eur", "2024-05-01"),
    );
    add(
        "donations.donation.succeeded",
        donation("d2", p(0), 2_500, "EUR", "2024-05-01"),
    );
    add(
        "donations.donation.succeeded",
        donation("d3", p(1), 10_000, "USD", "2023-06-01"),
    );
    add(
        "donations.donation.succeeded",
        donation("d4", p(2), 1_000, "EUR", "2023-12-31"),
    );
    // Someone contacts does not know (erased, or never here): ignored.
    let stranger = Uuid::now_v7();
    add(
        "donations.donation.succeeded",
        donation("d5", stranger, 9_000, "EUR", "2024-01-01"),
    );
    add(
        "events.attendance.changed",
        attendance("e1", stranger, AttendanceState::Attended, "2024-06-01"),
    );
    add("messaging.delivery.sent", sent(&[(stranger, "2024-05-01")]));
    // e1 attended by p0, p1 (after registering), p3 (a registration dated
    // earlier arrives late and is ignored); p2 cancelled after attending.
    // e2 attended by p0; p3 did not show.
    use AttendanceState::{Attended, Cancelled, NoShow, Registered};
    for (event, person, state, when) in [
        ("e1", p(0), Attended, "2024-06-01"),
        ("e1", p(1), Registered, "2024-05-20"),
        ("e1", p(1), Attended, "2024-06-01"),
        ("e1", p(2), Attended, "2024-06-01"),
        ("e1", p(2), Cancelled, "2024-06-02"),
        ("e1", p(3), Attended, "2024-06-01"),
        ("e1", p(3), Registered, "2024-05-01"),
        ("e2", p(0), Attended, "2024-07-01"),
        ("e2", p(3), NoShow, "2024-07-01"),
    ] {
        add(
            "events.attendance.changed",
            attendance(event, person, state, when),
        );
    }
    for (key, id, body) in &messages {
        publish(&bus, tenant, key, *id, body.clone()).await?;
    }
    // Redelivered messages (same message id) are applied once.
    for (key, id, body) in messages.iter().take(3) {
        publish(&bus, tenant, key, *id, body.clone()).await?;
    }

    let expected = messages.len() as i64;
    let mut applied = 0;
    for _ in 0..300 {
        applied = sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&pool)
            .await?;
        if applied == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied, expected, "messages applied");
    // Let the redelivered copies reach the consumers too.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut client = service.client(tenant).await?;
    let cases: [(&str, u64); 18] = [
        ("contacted>=2024-03-02", 2),
        ("contacted<2024-03-02", 1),
        ("contacted:2024-03-01..2024-03-06", 2),
        ("has:contacted", 3),
        ("NOT has:contacted", 3),
        ("NOT contacted>=2024-03-02", 4),
        ("donations.total>=50", 1),
        ("donations.total>=75,00", 1),
        ("donations.total>=75.01", 0),
        ("donations.total>=10", 2),
        ("donations.total>=100USD", 1),
        ("NOT donations.total>=10", 4),
        ("donations.last>=2024-01-01", 1),
        ("donations.last<2024-01-01", 2),
        ("attended:e1", 3),
        ("attended:e2 OR attended:e1", 3),
        ("attended.count>=2", 1),
        ("attended.count>=1 AND NOT attended:e2", 2),
    ];
    for (query, expected) in cases {
        assert_eq!(count(&mut client, query).await?, expected, "{query}");
    }

    let totals: Vec<(String, i64)> =
        sqlx::query_as("SELECT currency, total_cents FROM person_donations WHERE person_id = $1")
            .bind(p(0))
            .fetch_all(&pool)
            .await?;
    assert_eq!(totals, [("EUR".to_owned(), 7_500)]);
    let strangers: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM donations WHERE person_id = $1)
              + (SELECT count(*) FROM attendance WHERE person_id = $1)
              + (SELECT count(*) FROM last_contacts WHERE person_id = $1)",
    )
    .bind(stranger)
    .fetch_one(&pool)
    .await?;
    assert_eq!(strangers, 0);

    // A merge gives the merged person's projections to the survivor: p2
    // into p1 adds p2's EUR 10 to p1's USD 100, keeps p2's later send, and
    // p2's cancellation of e1 (dated after p1 attended) wins. A donation
    // announced for p2 afterwards counts for p1.
    client
        .merge_people(pb::MergePeopleRequest {
            survivor_id: p(1).to_string(),
            merged_id: p(2).to_string(),
            reason: "same person".into(),
        })
        .await?;
    publish(
        &bus,
        tenant,
        "donations.donation.succeeded",
        Uuid::now_v7(),
        donation("d6", p(2), 500, "EUR", "2024-08-01"),
    )
    .await?;
    for _ in 0..300 {
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&pool)
            .await?;
        if applied == expected + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut totals: Vec<(String, i64)> =
        sqlx::query_as("SELECT currency, total_cents FROM person_donations WHERE person_id = $1")
            .bind(p(1))
            .fetch_all(&pool)
            .await?;
    totals.sort();
    assert_eq!(
        totals,
        [("EUR".to_owned(), 1_500), ("USD".to_owned(), 10_000)]
    );
    let e1: String =
        sqlx::query_scalar("SELECT state FROM attendance WHERE person_id = $1 AND event_id = 'e1'")
            .bind(p(1))
            .fetch_one(&pool)
            .await?;
    assert_eq!(e1, "cancelled");
    let contacted: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT contacted_at FROM last_contacts WHERE person_id = $1")
            .bind(p(1))
            .fetch_one(&pool)
            .await?;
    assert_eq!(contacted, Some(day("2024-04-01")));
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM donations WHERE person_id = $1)
              + (SELECT count(*) FROM person_donations WHERE person_id = $1)
              + (SELECT count(*) FROM attendance WHERE person_id = $1)
              + (SELECT count(*) FROM last_contacts WHERE person_id = $1)",
    )
    .bind(p(2))
    .fetch_one(&pool)
    .await?;
    assert_eq!(left, 0, "rows left under the merged id");
    assert_eq!(count(&mut client, "donations.total>=15").await?, 2);

    // Erasing a person erases what the projections hold about them.
    let (channel, bearer) = service.connect(tenant).await?;
    let mut people_data = PersonDataServiceClient::with_interceptor(channel, bearer);
    // The access export shows what the projections hold, merged ones included.
    let export = people_data
        .export_person(pb::ExportPersonRequest {
            person_id: p(1).to_string(),
        })
        .await?
        .into_inner();
    let donations: Vec<&str> = export
        .donations
        .iter()
        .map(|d| d.donation_id.as_str())
        .collect();
    assert_eq!(donations, ["d3", "d4", "d6"]);
    let attended: Vec<(&str, &str)> = export
        .attendance
        .iter()
        .map(|a| (a.event_id.as_str(), a.state.as_str()))
        .collect();
    assert_eq!(attended, [("e1", "cancelled")]);
    assert_eq!(
        export.last_contacted_time,
        Some(muster_runtime::time::to_proto(day("2024-04-01")))
    );

    people_data
        .erase_person(pb::ErasePersonRequest {
            person_id: p(0).to_string(),
            requested_by: "test".into(),
            reason: "asked".into(),
        })
        .await?;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM donations WHERE person_id = $1)
              + (SELECT count(*) FROM person_donations WHERE person_id = $1)
              + (SELECT count(*) FROM attendance WHERE person_id = $1)
              + (SELECT count(*) FROM last_contacts WHERE person_id = $1)",
    )
    .bind(p(0))
    .fetch_one(&pool)
    .await?;
    assert_eq!(left, 0);
    // p3 only: p0 is erased and p1's e1 was cancelled by the merge.
    assert_eq!(count(&mut client, "attended.count>=1").await?, 1);

    for (query, message) in [
        (
            "attended.count>=0",
            "filter.query: column 17: \"0\" is not a count",
        ),
        (
            "donations.total>=12,345",
            "filter.query: column 18: \"12,345\" is not an amount",
        ),
        (
            "donations.total>=5EURO",
            "filter.query: column 18: \"EURO\" is not a currency",
        ),
        (
            "contacted>2024-01-01",
            "filter.query: column 11: contacted takes >=",
        ),
        (
            "has:contact",
            "filter.query: column 5: has:contact: use has:email",
        ),
    ] {
        let error = count(&mut client, query).await.unwrap_err();
        assert!(
            error.message().starts_with(message),
            "{query}: {}",
            error.message()
        );
    }

    bus.close().await;
    service.stop().await
}
