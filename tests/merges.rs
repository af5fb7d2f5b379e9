//! One record per person across the services: duplicates found after an
//! import are reviewed and merged through the gateway, and messaging
//! re-points the merged person's deliveries once contacts announces it
//! (and erases the one it could not move with the survivor).

use std::time::Duration;

use muster_e2e::Stack;
use muster_proto::contacts::v1 as contacts;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Ann twice (a new and an old address, the same postal code) and Bob twice.
fn supporters_file() -> anyhow::Result<std::path::PathBuf> {
    let file = std::env::temp_dir().join(format!("merges-{}.csv", muster_testkit::unique()));
    std::fs::write(
        &file,
        "email,first,last,postal_code,tags,consent,consent_time\r\n\
         ann@example.org,Ann,Lee,69001,,oui,2026-01-01 10:00\r\n\
         annie@old.example,ANN,Lée,69001,old,oui,2026-01-01 10:00\r\n\
         bob@example.org,Bob,Roy,13001,,oui,2026-01-01 10:00\r\n\
         bob@work.example,Bob,Roy,13 001,,oui,2026-01-01 10:00\r\n",
    )?;
    Ok(file)
}

fn mapping() -> contacts::ColumnMapping {
    contacts::ColumnMapping {
        email: "email".into(),
        first_name: "first".into(),
        last_name: "last".into(),
        postal_code: "postal_code".into(),
        tags: "tags".into(),
        email_consent: "consent".into(),
        email_consent_time: "consent_time".into(),
        ..Default::default()
    }
}

async fn person(stack: &Stack, email_key: &str) -> anyhow::Result<Uuid> {
    Ok(
        sqlx::query_scalar("SELECT id FROM people WHERE email_key = $1")
            .bind(email_key)
            .fetch_one(&stack.contacts_pool)
            .await?,
    )
}

async fn delivery_people(stack: &Stack, campaign: &str) -> anyhow::Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT person_id FROM deliveries WHERE campaign_id = $1 ORDER BY person_id",
    )
    .bind(Uuid::parse_str(campaign)?)
    .fetch_all(&stack.messaging_pool)
    .await?)
}

#[tokio::test]
async fn a_reviewed_merge_repoints_the_merged_persons_deliveries() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let started = stack.start_gateway(&shutdown, |_| {}).await?;
    let pool = sqlx::PgPool::connect(&started.database.url).await?;
    let (tenant, key) = muster_gateway::create_tenant(&pool, "Comité de Lyon").await?;
    pool.close().await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{}{path}", started.base))
            .bearer_auth(&key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            anyhow::Ok((
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            ))
        }
    };

    // Arrange: the import lists both pairs; one campaign reached only the old
    // address, another everyone.
    let job = stack
        .import_custom(tenant, &supporters_file()?, mapping())
        .await?;
    assert_eq!(job.counts.unwrap_or_default().created, 4, "{job:?}");
    let only_old = contacts::SegmentFilter {
        tags_any: vec!["old".into()],
        ..Default::default()
    };
    let first = stack.launch_campaign(tenant, only_old).await?;
    let everyone = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    for campaign in [&first, &everyone] {
        stack.wait_completed(tenant, &campaign.id).await?;
    }
    let (ann, annie) = (
        person(&stack, "ann@example.org").await?,
        person(&stack, "annie@old.example").await?,
    );
    assert_eq!(delivery_people(&stack, &first.id).await?, [annie]);

    let (status, listed) = call(reqwest::Method::GET, "/v1/duplicates", None).await?;
    assert_eq!(status, 200, "{listed}");
    let pairs = listed["duplicates"].as_array().cloned().unwrap_or_default();
    assert_eq!(pairs.len(), 2, "{listed}");
    assert!(
        pairs
            .iter()
            .all(|p| p["reasons"] == json!(["name_postal_code"])),
        "{listed}"
    );
    let bobs = pairs
        .iter()
        .find(|p| p["first"]["first_name"] == "Bob")
        .and_then(|p| p["id"].as_str())
        .unwrap_or_default()
        .to_owned();

    // Act: Bob's pair is dismissed, Ann's merged.
    let path = format!("/v1/duplicates/{bobs}/dismiss");
    let (status, dismissed) = call(reqwest::Method::POST, &path, None).await?;
    assert_eq!(
        (status, &dismissed["state"]),
        (200, &json!("dismissed")),
        "{dismissed}"
    );
    let body = json!({ "other_id": annie.to_string(), "reason": "same supporter" });
    let path = format!("/v1/people/{ann}/merge");
    let (status, merge) = call(reqwest::Method::POST, &path, Some(body.clone())).await?;
    assert_eq!(status, 200, "{merge}");
    assert_eq!(
        merge["survivor"]["other_emails"],
        json!(["annie@old.example"])
    );
    assert_eq!(merge["survivor"]["tags"], json!(["old"]));
    let (status, again) = call(reqwest::Method::POST, &path, Some(body)).await?;
    assert_eq!(status, 409, "{again}");

    // Assert: the merged id answers with the survivor, nothing is left to
    // review, and messaging moved the deliveries it could.
    let (status, answered) =
        call(reqwest::Method::GET, &format!("/v1/people/{annie}"), None).await?;
    assert_eq!(
        (status, &answered["id"]),
        (200, &json!(ann.to_string())),
        "{answered}"
    );
    let (_, listed) = call(reqwest::Method::GET, "/v1/duplicates", None).await?;
    assert_eq!(listed["duplicates"], json!([]), "{listed}");

    let mut repointed = Vec::new();
    for _ in 0..300 {
        repointed = delivery_people(&stack, &first.id).await?;
        if repointed == [ann] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(repointed, [ann], "the delivery follows the merge");
    let recorded: (Uuid, Uuid) = sqlx::query_as("SELECT merged_id, survivor_id FROM person_merges")
        .fetch_one(&stack.messaging_pool)
        .await?;
    assert_eq!(recorded, (annie, ann));
    // The campaign that reached both keeps one delivery each: the merged
    // person's stays under its id, found through person_merges.
    let both = delivery_people(&stack, &everyone.id).await?;
    assert!(both.contains(&ann) && both.contains(&annie), "{both:?}");

    let path = format!("/v1/people/{ann}/export");
    let (status, export) = call(reqwest::Method::GET, &path, None).await?;
    assert_eq!(status, 200, "{export}");
    let exported = export["services"]["messaging"]["deliveries"]
        .as_array()
        .map(Vec::len);
    assert_eq!(
        exported,
        Some(3),
        "both of Ann's and the one kept: {export}"
    );
    // What the merged record held is Ann's too: the access export shows it.
    let merges = &export["services"]["contacts"]["merges"];
    assert_eq!(merges.as_array().map(Vec::len), Some(1), "{export}");
    assert_eq!(
        (&merges[0]["merged_id"], &merges[0]["reason"]),
        (&json!(annie.to_string()), &json!("same supporter")),
        "{export}"
    );
    assert_eq!(
        merges[0]["snapshot"]["email"], "annie@old.example",
        "{export}"
    );

    // Erasing the survivor erases that delivery too.
    let path = format!("/v1/people/{ann}/erase");
    let (status, erasure) = call(reqwest::Method::POST, &path, None).await?;
    assert_eq!(status, 202, "{erasure}");
    let mut kept = String::from("not erased");
    for _ in 0..300 {
        kept = sqlx::query_scalar(
            "SELECT email FROM deliveries WHERE campaign_id = $1 AND person_id = $2",
        )
        .bind(Uuid::parse_str(&everyone.id)?)
        .bind(annie)
        .fetch_one(&stack.messaging_pool)
        .await?;
        if kept.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        kept, "",
        "the merged person's address is erased with the survivor"
    );

    shutdown.cancel();
    stack.stop().await
}
