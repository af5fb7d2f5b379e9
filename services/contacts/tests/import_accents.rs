//! Accents written decomposed (a letter and a combining mark, as macOS
//! writes them) against a real contacts service and its own database: an
//! import composes them, so the tag matches a segment typed either way.

use muster_proto::contacts::v1 as pb;
use muster_runtime::TenantId;
use uuid::Uuid;

mod support;

use support::{Client, Service};

async fn upload(client: &mut Client, csv: &str) -> anyhow::Result<pb::ImportJob> {
    let header = pb::ImportHeader {
        file_name: "accents.csv".into(),
        preset: pb::ImportPreset::Custom as i32,
        mapping: Some(pb::ColumnMapping {
            email: "email".into(),
            first_name: "prenom".into(),
            city: "ville".into(),
            tags: "tags".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    support::upload(client, header, csv).await
}

async fn count(client: &mut Client, filter: pb::SegmentFilter) -> anyhow::Result<u64> {
    let request = pb::CountSegmentRequest {
        filter: Some(filter),
    };
    Ok(client.count_segment(request).await?.into_inner().count)
}

#[tokio::test]
async fn a_decomposed_tag_matches_the_composed_segment() -> anyhow::Result<()> {
    let service = Service::start("accents").await?;
    let pool = service.pool.clone();
    let tenant = TenantId::new();
    let mut client = service.client(tenant).await?;

    let job = upload(
        &mut client,
        "email,prenom,ville,tags\r\n\
         honore@example.org,Honore\u{301},Orle\u{301}ans,adhe\u{301}rent\r\n\
         paul@example.org,Paul,Lyon,donateur\r\n",
    )
    .await?;
    assert_eq!(job.counts.unwrap_or_default().created, 2, "{job:?}");

    let composed = pb::SegmentFilter {
        tags_any: vec!["adh\u{e9}rent".into()],
        ..Default::default()
    };
    assert_eq!(count(&mut client, composed).await?, 1);
    let decomposed = pb::SegmentFilter {
        tags_all: vec!["adhe\u{301}rent".into()],
        ..Default::default()
    };
    assert_eq!(count(&mut client, decomposed).await?, 1);
    let none = pb::SegmentFilter {
        tags_none: vec!["adhe\u{301}rent".into()],
        ..Default::default()
    };
    assert_eq!(count(&mut client, none).await?, 1);

    let stored: (String, String, Vec<String>) = sqlx::query_as(
        "SELECT first_name, city, tags FROM people WHERE email_key = 'honore@example.org'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        stored,
        (
            "Honor\u{e9}".to_owned(),
            "Orl\u{e9}ans".to_owned(),
            vec!["adh\u{e9}rent".to_owned()]
        )
    );

    // The tree and the text forms compose their tags too.
    let tree = pb::SegmentFilter {
        expr: Some(pb::SegmentExpr {
            node: Some(pb::segment_expr::Node::Tag("adhe\u{301}rent".into())),
        }),
        ..Default::default()
    };
    assert_eq!(count(&mut client, tree).await?, 1);
    let text = pb::SegmentFilter {
        query: "tag:adhe\u{301}rent OR tag:donateur".into(),
        ..Default::default()
    };
    assert_eq!(count(&mut client, text).await?, 2);

    // A tag stored decomposed by an earlier version is composed by the
    // migration, which keeps one of two spellings that become the same.
    let old: Uuid = sqlx::query_scalar(
        "INSERT INTO people (id, tenant_id, email, email_key, tags)
         VALUES ($1, $2, 'ancien@example.org', 'ancien@example.org', $3) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(vec![
        "b\u{e9}n\u{e9}vole",
        "adhe\u{301}rent",
        "be\u{301}ne\u{301}vole",
    ])
    .fetch_one(&pool)
    .await?;
    sqlx::raw_sql(include_str!("../migrations/0011_composed_tags.sql"))
        .execute(&pool)
        .await?;
    let tags: Vec<String> = sqlx::query_scalar("SELECT tags FROM people WHERE id = $1")
        .bind(old)
        .fetch_one(&pool)
        .await?;
    assert_eq!(tags, ["b\u{e9}n\u{e9}vole", "adh\u{e9}rent"]);
    let both = pb::SegmentFilter {
        tags_any: vec!["adh\u{e9}rent".into()],
        ..Default::default()
    };
    assert_eq!(count(&mut client, both).await?, 2);

    service.stop().await
}
