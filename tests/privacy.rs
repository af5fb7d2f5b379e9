//! A person's rights through the gateway against the real services: the
//! export (JSON and CSV) of what contacts and messaging hold, and erasure
//! everywhere, confirmed on the bus, that a later import or campaign does
//! not undo, by its address or by its phone number.

use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use muster_e2e::Stack;
use muster_proto::contacts::v1 as contacts;
use muster_proto::events::v1::PersonErased;
use muster_runtime::TenantId;
use muster_runtime::bus::{self, Bus};
use prost::Message;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const FORMULA_NAME: &str = "=HYPERLINK(\"http://evil.example\",\"clic\")";

struct Gateway {
    database: muster_runtime::config::DatabaseSettings,
    base: String,
    key: String,
    tenant: TenantId,
    http: reqwest::Client,
}

impl Gateway {
    async fn start(stack: &Stack, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        let started = stack.start_gateway(shutdown, |_| {}).await?;
        let (database, base) = (started.database, started.base);
        let pool = sqlx::PgPool::connect(&database.url).await?;
        let (tenant, key) = muster_gateway::create_tenant(&pool, "Comité de Lyon").await?;
        pool.close().await;
        Ok(Self {
            database,
            base,
            key,
            tenant,
            http: reqwest::Client::new(),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(request.send().await?)
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let response = self.send(method, path, body).await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }
}

/// A file of two consenting people, one named like a spreadsheet formula.
fn supporters_file() -> anyhow::Result<std::path::PathBuf> {
    let file = std::env::temp_dir().join(format!("rights-{}.csv", muster_testkit::unique()));
    let formula = FORMULA_NAME.replace('"', "\"\"");
    std::fs::write(
        &file,
        format!(
            "email,first,last,consent,consent_time\r\n\
             Jeanne.Martin@Example.org,\"{formula}\",Martin,oui,2026-01-01 10:00\r\n\
             paul@example.org,Paul,Durand,oui,2026-01-02 10:00\r\n"
        ),
    )?;
    Ok(file)
}

fn mapping() -> contacts::ColumnMapping {
    contacts::ColumnMapping {
        email: "email".into(),
        first_name: "first".into(),
        last_name: "last".into(),
        email_consent: "consent".into(),
        email_consent_time: "consent_time".into(),
        ..Default::default()
    }
}

async fn count(pool: &sqlx::PgPool, sql: &str, person: uuid::Uuid) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(person)
        .fetch_one(pool)
        .await?)
}

#[tokio::test]
async fn a_person_is_exported_then_erased_everywhere_and_stays_erased() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start(&stack, &shutdown).await?;
    let tenant = gateway.tenant;
    let file = supporters_file()?;

    // Arrange: both imported, one campaign sent to both.
    let job = stack.import_custom(tenant, &file, mapping()).await?;
    assert_eq!(job.counts.unwrap_or_default().created, 2, "{job:?}");
    let first = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &first.id).await?;
    assert_eq!(done.counts.unwrap_or_default().sent, 2);
    let person: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM people WHERE email_key = 'jeanne.martin@example.org'")
            .fetch_one(&stack.contacts_pool)
            .await?;

    // Access: the JSON export has both services' sections.
    let (status, export) = gateway
        .json(
            reqwest::Method::GET,
            &format!("/v1/people/{person}/export"),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{export}");
    assert!(export["generated_at"].is_string(), "{export}");
    let contacts_part = &export["services"]["contacts"];
    assert_eq!(
        contacts_part["person"]["email"],
        "Jeanne.Martin@Example.org"
    );
    let ledger = contacts_part["consent_events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ledger.len(), 1, "{export}");
    assert_eq!(ledger[0]["state"], "granted");
    assert!(
        ledger[0]["source"]
            .as_str()
            .unwrap_or_default()
            .starts_with("import:")
    );
    let deliveries = export["services"]["messaging"]["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(deliveries.len(), 1, "{export}");
    assert_eq!(deliveries[0]["state"], "sent");
    assert_eq!(deliveries[0]["campaign_id"], first.id.as_str());

    // Access as CSV: one row per item, the formula neutralised.
    let response = gateway
        .send(
            reqwest::Method::GET,
            &format!("/v1/people/{person}/export.csv"),
            None,
        )
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let csv = response.text().await?;
    let quoted = format!("'{FORMULA_NAME}").replace('"', "\"\"");
    assert!(csv.contains(&format!("\"{quoted}\"")), "{csv}");
    assert!(
        !csv.contains(",\"=HYPERLINK") && !csv.contains(",=HYPERLINK"),
        "{csv}"
    );
    let sections: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(sections, ["person", "consent_event", "delivery"], "{csv}");

    // Erasure, confirmed by both services.
    let body = json!({ "requested_by": "dpo@comite.example", "reason": "article 17" });
    let (status, erasure) = gateway
        .json(
            reqwest::Method::POST,
            &format!("/v1/people/{person}/erase"),
            Some(body),
        )
        .await?;
    assert_eq!(status, 202, "{erasure}");
    let erasure_path = format!(
        "/v1/erasures/{}",
        erasure["id"].as_str().unwrap_or_default()
    );
    let mut erasure = erasure;
    for _ in 0..300 {
        if erasure["complete"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        erasure = gateway
            .json(reqwest::Method::GET, &erasure_path, None)
            .await?
            .1;
    }
    let mut confirmed: Vec<&str> = erasure["confirmations"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["service"].as_str()).collect())
        .unwrap_or_default();
    confirmed.sort_unstable();
    assert_eq!(confirmed, ["contacts", "messaging"], "{erasure}");
    assert_eq!(erasure["requested_by"], "dpo@comite.example");
    assert_eq!(erasure["complete"], true);

    // Gone from contacts: no row, no address or name; the ledger ends withdrawn.
    let people =
        "SELECT count(*) FROM people WHERE id = $1 OR email_key = 'jeanne.martin@example.org'
                  OR first_name LIKE '%HYPERLINK%'";
    assert_eq!(count(&stack.contacts_pool, people, person).await?, 0);
    let last: (String, String) = sqlx::query_as(
        "SELECT state, source FROM consent_events WHERE person_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(person)
    .fetch_one(&stack.contacts_pool)
    .await?;
    assert_eq!(last, ("withdrawn".to_owned(), "erasure".to_owned()));
    let leaked = "SELECT count(*) FROM consent_events WHERE person_id = $1
                  AND evidence::text ILIKE '%jeanne%'";
    assert_eq!(count(&stack.contacts_pool, leaked, person).await?, 0);
    // Gone from messaging: the delivery is kept, blank; the opt-out is a hash.
    let named = "SELECT count(*) FROM deliveries WHERE person_id = $1
                 AND (email <> '' OR first_name <> '' OR last_name <> '')";
    assert_eq!(count(&stack.messaging_pool, named, person).await?, 0);
    let by_address = "SELECT count(*) FROM deliveries WHERE $1::uuid IS NOT NULL
                      AND (lower(email) = 'jeanne.martin@example.org'
                           OR first_name LIKE '%HYPERLINK%')";
    assert_eq!(count(&stack.messaging_pool, by_address, person).await?, 0);
    let plain = "SELECT count(*) FROM suppressions WHERE $1::uuid IS NOT NULL
                 AND email_key = 'jeanne.martin@example.org'";
    assert_eq!(count(&stack.messaging_pool, plain, person).await?, 0);
    let hashed = "SELECT count(*) FROM suppressions WHERE person_id = $1 AND reason = 'erased'
                  AND length(email_key) = 64 AND email_key NOT LIKE '%@%'";
    assert_eq!(count(&stack.messaging_pool, hashed, person).await?, 1);

    // Asking again (a retried request) answers with the first erasure.
    let (status, again) = gateway
        .json(
            reqwest::Method::POST,
            &format!("/v1/people/{person}/erase"),
            None,
        )
        .await?;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["id"], erasure["id"], "{again}");
    assert_eq!(again["complete"], true, "{again}");
    let requests = "SELECT count(*) FROM erasure_requests WHERE person_id = $1";
    assert_eq!(count(&stack.contacts_pool, requests, person).await?, 1);
    let stranger = uuid::Uuid::now_v7();
    let (status, _) = gateway
        .json(
            reqwest::Method::POST,
            &format!("/v1/people/{stranger}/erase"),
            None,
        )
        .await?;
    assert_eq!(status, 404, "a person never known");

    // The same file again, with consent: the erased address is refused.
    let job = stack.import_custom(tenant, &file, mapping()).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.created, counts.rejected), (0, 1), "{job:?}");
    let again = "SELECT count(*) FROM people WHERE $1::uuid IS NOT NULL
                 AND email_key = 'jeanne.martin@example.org'";
    assert_eq!(count(&stack.contacts_pool, again, person).await?, 0);

    // A new campaign reaches Paul only.
    let second = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &second.id).await?;
    assert_eq!(done.counts.unwrap_or_default().sent, 1);
    let received = stack.received_by_recipient()?;
    assert_eq!(
        received.get("jeanne.martin@example.org").map(Vec::len),
        Some(1)
    );
    assert_eq!(received.get("paul@example.org").map(Vec::len), Some(2));

    std::fs::remove_file(file)?;
    shutdown.cancel();
    muster_testkit::drop_database(&gateway.database).await?;
    stack.stop().await
}

#[tokio::test]
async fn messaging_keeps_blocking_an_erased_address_that_comes_back() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let file = supporters_file()?;
    stack.import_custom(tenant, &file, mapping()).await?;
    let person: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM people WHERE email_key = 'jeanne.martin@example.org'")
            .fetch_one(&stack.contacts_pool)
            .await?;
    let channel = tonic::transport::Endpoint::from_shared(stack.contacts_endpoint())?
        .connect()
        .await?;
    let token = stack
        .signer
        .mint("test", Some(tenant), Duration::from_secs(600));
    let mut people =
        contacts::person_data_service_client::PersonDataServiceClient::with_interceptor(
            channel,
            muster_runtime::auth::Bearer::new(&token),
        );
    let erasure = people
        .erase_person(contacts::ErasePersonRequest {
            person_id: person.to_string(),
            requested_by: "test".into(),
            reason: String::new(),
        })
        .await?
        .into_inner();
    for _ in 0..300 {
        let seen = people
            .get_erasure(contacts::GetErasureRequest {
                id: erasure.id.clone(),
            })
            .await?
            .into_inner();
        if seen.complete {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hashed = "SELECT count(*) FROM suppressions WHERE person_id = $1 AND reason = 'erased'";
    assert_eq!(count(&stack.messaging_pool, hashed, person).await?, 1);

    // The address comes back into contacts by a path that skips the import's
    // check (a person written directly), consenting.
    sqlx::query(
        "INSERT INTO people (id, tenant_id, email, email_key, email_consent)
         VALUES ($1, $2, 'JEANNE.martin@example.org', 'jeanne.martin@example.org', 'granted')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant)
    .execute(&stack.contacts_pool)
    .await?;

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    let counts = done.counts.unwrap_or_default();
    assert_eq!((counts.sent, counts.suppressed), (1, 1), "{counts:?}");
    let received = stack.received_by_recipient()?;
    assert!(
        !received.contains_key("jeanne.martin@example.org"),
        "{received:?}"
    );
    assert_eq!(received.get("paul@example.org").map(Vec::len), Some(1));

    std::fs::remove_file(file)?;
    stack.stop().await
}

#[tokio::test]
async fn an_erased_phone_number_does_not_bring_the_person_back() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let dir = std::env::temp_dir();
    let full = dir.join(format!("phone-{}.csv", muster_testkit::unique()));
    std::fs::write(
        &full,
        "email,phone,prenom,nom\r\nhonore.meyer@example.org,06 46 97 22 16,Honoré,Meyer\r\n",
    )?;
    let mapping = contacts::ColumnMapping {
        email: "email".into(),
        phone: "phone".into(),
        first_name: "prenom".into(),
        last_name: "nom".into(),
        ..Default::default()
    };
    let job = stack.import_custom(tenant, &full, mapping.clone()).await?;
    assert_eq!(job.counts.unwrap_or_default().created, 1, "{job:?}");
    let person: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM people WHERE phone = '+33646972216'")
            .fetch_one(&stack.contacts_pool)
            .await?;

    // A queue of this test's own sees the erasure announced.
    let bus = Bus::connect(&stack.amqp, "privacy-test").await?;
    let watching = bus.channel().await?;
    let watch = bus.name("test.person-erased");
    watching
        .queue_declare(
            watch.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    watching
        .queue_bind(
            watch.as_str().into(),
            bus.name(bus::EVENTS_EXCHANGE).as_str().into(),
            "contacts.person.erased".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let channel = tonic::transport::Endpoint::from_shared(stack.contacts_endpoint())?
        .connect()
        .await?;
    let token = stack
        .signer
        .mint("test", Some(tenant), Duration::from_secs(600));
    let mut people =
        contacts::person_data_service_client::PersonDataServiceClient::with_interceptor(
            channel,
            muster_runtime::auth::Bearer::new(&token),
        );
    people
        .erase_person(contacts::ErasePersonRequest {
            person_id: person.to_string(),
            requested_by: "test".into(),
            reason: String::new(),
        })
        .await?;
    // Only a hash of the number is kept.
    let hashed = "SELECT count(*) FROM erased_phones e JOIN erasure_requests r
                  ON r.id = e.erasure_id WHERE r.person_id = $1
                  AND length(e.phone_hash) = 64 AND e.phone_hash NOT LIKE '%33646972216%'";
    assert_eq!(count(&stack.contacts_pool, hashed, person).await?, 1);
    // And announced, so that a service that texts or calls keeps the opt-out.
    let stored: String = sqlx::query_scalar(
        "SELECT e.phone_hash FROM erased_phones e JOIN erasure_requests r
         ON r.id = e.erasure_id WHERE r.person_id = $1",
    )
    .bind(person)
    .fetch_one(&stack.contacts_pool)
    .await?;
    let mut announced = None;
    for _ in 0..100 {
        let got = watching
            .basic_get(watch.as_str().into(), BasicGetOptions { no_ack: true })
            .await?;
        if let Some(message) = got {
            announced = Some(PersonErased::decode(message.delivery.data.as_slice())?);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let announced = announced.expect("contacts.person.erased is published");
    assert_eq!(announced.person_id, person.to_string());
    assert_eq!(announced.phone_hashes, [stored]);
    assert_eq!(announced.email_hashes.len(), 1);
    watching
        .queue_delete(watch.as_str().into(), Default::default())
        .await?;

    // The phone alone, in E.164 form and in national form, with another
    // address: each row is refused, and the issue hides the number.
    let phone_only = dir.join(format!("phone-only-{}.csv", muster_testkit::unique()));
    std::fs::write(
        &phone_only,
        "phone,prenom,nom,email\r\n\
         +33646972216,Honoré,Meyer,\r\n\
         06.46.97.22.16,Honoré,Meyer,h.meyer@example.net\r\n\
         +33612345678,Paul,Durand,\r\n",
    )?;
    let job = stack.import_custom(tenant, &phone_only, mapping).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.created, counts.rejected), (1, 2), "{job:?}");
    let import: uuid::Uuid = job.id.parse()?;
    let issues: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT line, field, value, reason FROM import_issues WHERE import_id = $1 ORDER BY line",
    )
    .bind(import)
    .fetch_all(&stack.contacts_pool)
    .await?;
    let lines: Vec<(i64, &str, &str)> = issues
        .iter()
        .map(|(line, field, value, _)| (*line, field.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        lines,
        [(2, "phone", "(erased)"), (3, "phone", "(erased)")],
        "{issues:?}"
    );
    assert!(issues[0].3.contains("erased"), "{issues:?}");
    assert!(
        issues
            .iter()
            .all(|(_, _, value, reason)| !value.contains("46") && !reason.contains("46")),
        "{issues:?}"
    );
    let back = "SELECT count(*) FROM people WHERE $1::uuid IS NOT NULL
                AND (phone = '+33646972216' OR last_name = 'Meyer')";
    assert_eq!(count(&stack.contacts_pool, back, person).await?, 0);
    let paul = "SELECT count(*) FROM people WHERE $1::uuid IS NOT NULL AND phone = '+33612345678'";
    assert_eq!(count(&stack.contacts_pool, paul, person).await?, 1);

    std::fs::remove_file(full)?;
    std::fs::remove_file(phone_only)?;
    stack.stop().await
}
