//! The main job end to end: the four shared supporter files imported, then a
//! consent-respecting campaign received by a real SMTP server.

use std::collections::HashSet;

use muster_e2e::{Stack, data_file};
use muster_proto::contacts::v1::{
    ConsentState, ImportCounts, ImportPreset, ImportState, SegmentFilter,
};
use muster_runtime::TenantId;

async fn import_all(
    stack: &Stack,
    tenant: TenantId,
) -> anyhow::Result<Vec<muster_proto::contacts::v1::ImportJob>> {
    let files = [
        ("adherents-export-excel-fr.csv", ImportPreset::FrExcel),
        (
            "nationbuilder-people-export.csv",
            ImportPreset::Nationbuilder,
        ),
        (
            "mailchimp-audience-subscribed.csv",
            ImportPreset::MailchimpSubscribed,
        ),
        (
            "mailchimp-audience-unsubscribed.csv",
            ImportPreset::MailchimpUnsubscribed,
        ),
    ];
    let mut jobs = Vec::new();
    for (file, preset) in files {
        let job = stack.import(tenant, &data_file(file), preset).await?;
        assert_eq!(
            job.state,
            ImportState::Succeeded as i32,
            "{file}: {}",
            job.error
        );
        jobs.push(job);
    }
    Ok(jobs)
}

#[tokio::test]
async fn the_four_shared_files_import_with_every_row_accounted_for() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let jobs = import_all(&stack, tenant).await?;

    for job in &jobs {
        let c = job.counts.unwrap();
        println!(
            "{}: {c:?} encoding={} delimiter={}",
            job.file_name, job.encoding, job.delimiter
        );
        assert_eq!(
            c.rows_read,
            c.created + c.merged + c.rejected,
            "{}",
            job.file_name
        );
        assert_eq!(job.bytes_read, job.size_bytes, "{}", job.file_name);
    }
    assert_eq!(jobs[0].encoding, "windows-1252");
    assert_eq!(jobs[0].delimiter, ";");
    let counts: Vec<_> = jobs.iter().map(|j| j.counts.unwrap()).collect();
    let summary = |c: &ImportCounts| {
        (
            c.rows_read,
            c.rows_empty,
            c.created,
            c.merged,
            c.rejected,
            c.consent_granted,
            c.suppressed,
        )
    };
    // French export: 20,000 people + 500 duplicates (494 valid, 6 with an invalid
    // address), trailing empty rows, ~2% invalid addresses (kept when a phone is valid).
    assert_eq!(
        summary(&counts[0]),
        (20_500, 3, 19_878, 494, 128, 16_126, 0)
    );
    assert_eq!(summary(&counts[1]), (5_125, 0, 4_739, 337, 49, 3_859, 54));
    assert_eq!(summary(&counts[2]), (5_125, 0, 4_632, 394, 99, 4_686, 0));
    // The unsubscribed are 400 people of the French file: the 396 with a valid
    // address are suppressed; the 4 whose address is invalid there too are
    // rejected (nothing can be sent to them).
    assert_eq!(summary(&counts[3]), (400, 0, 0, 396, 4, 0, 396));

    let people: i64 = sqlx::query_scalar("SELECT count(*) FROM people WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&stack.contacts_pool)
        .await?;
    let created: u64 = jobs.iter().map(|j| j.counts.unwrap().created).sum();
    // After each import, people sharing an external id would be merged (the
    // default rule): the files have none in common (Mailchimp's EUID is
    // unique across audiences), so every duplicate found waits for review —
    // the French file's 6 duplicate rows whose address is invalid, kept for
    // their phone, are the same people as their first rows.
    let merged: Vec<(String, i64)> = sqlx::query_as(
        "SELECT merged_by, count(*) FROM merges WHERE tenant_id = $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(tenant)
    .fetch_all(&stack.contacts_pool)
    .await?;
    let merges: i64 = merged.iter().map(|(_, n)| n).sum();
    assert_eq!(people as u64 + merges as u64, created, "{merged:?}");
    assert!(merged.is_empty(), "{merged:?}");
    let listed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM duplicates WHERE tenant_id = $1 AND state = 'open'",
    )
    .bind(tenant)
    .fetch_one(&stack.contacts_pool)
    .await?;
    assert_eq!(listed, 6, "likely duplicates listed for review");

    stack.stop().await
}

#[tokio::test]
async fn reimporting_a_subscribed_file_never_resubscribes_the_unsubscribed() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    import_all(&stack, tenant).await?;
    let again = stack
        .import(
            tenant,
            &data_file("adherents-export-excel-fr.csv"),
            ImportPreset::FrExcel,
        )
        .await?;
    let c = again.counts.unwrap();
    assert_eq!(
        (c.created, c.consent_granted, c.suppressed),
        (0, 0, 0),
        "{c:?}"
    );

    let withdrawn: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND email_consent = 'withdrawn'",
    )
    .bind(tenant)
    .fetch_one(&stack.contacts_pool)
    .await?;
    assert!(withdrawn >= 400, "{withdrawn}");
    stack.stop().await
}

#[tokio::test]
async fn a_campaign_reaches_exactly_the_consenting_segment_once_each() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    import_all(&stack, tenant).await?;

    let expected: HashSet<String> = sqlx::query_scalar(
        "SELECT email_key FROM people WHERE tenant_id = $1 AND 'adhérent' = ANY(tags)
           AND email_consent = 'granted' AND email_key IS NOT NULL",
    )
    .bind(tenant)
    .fetch_all(&stack.contacts_pool)
    .await?
    .into_iter()
    .collect();
    let unsubscribed: HashSet<String> =
        std::fs::read_to_string(data_file("mailchimp-audience-unsubscribed.csv"))?
            .lines()
            .skip(1)
            .filter_map(|line| line.split(',').next())
            .map(|email| email.trim().to_lowercase())
            .collect();
    assert!(expected.len() > 1_000, "{}", expected.len());
    assert!(expected.is_disjoint(&unsubscribed));

    let segment = SegmentFilter {
        tags_any: vec!["adhérent".into()],
        ..Default::default()
    };
    let mut contacts = stack.contacts(tenant).await?;
    let counted = contacts
        .count_segment(muster_proto::contacts::v1::CountSegmentRequest {
            filter: Some(SegmentFilter {
                email_consent: ConsentState::Granted as i32,
                require_email: true,
                ..segment.clone()
            }),
        })
        .await?
        .into_inner()
        .count;
    assert_eq!(counted as usize, expected.len());

    let campaign = stack.launch_campaign(tenant, segment).await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    let counts = done.counts.unwrap();
    assert_eq!(counts.total as usize, expected.len());
    assert_eq!(counts.sent as usize, expected.len(), "{counts:?}");

    let received = stack.received_by_recipient()?;
    let recipients: HashSet<String> = received.keys().cloned().collect();
    assert_eq!(
        recipients, expected,
        "received set differs from the consenting segment"
    );
    for (recipient, messages) in &received {
        assert_eq!(
            messages.len(),
            1,
            "{recipient} received {} messages",
            messages.len()
        );
        let raw = &messages[0].raw;
        assert!(
            raw.contains("List-Unsubscribe: <http://127.0.0.1:8080/u/"),
            "{raw}"
        );
        assert!(
            raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{raw}"
        );
        assert!(
            raw.contains("Subject: Rendez-vous =?utf-8?b?"),
            "RFC 2047 subject: {raw}"
        );
    }
    stack.stop().await
}

#[tokio::test]
async fn an_upload_cut_short_fails_instead_of_importing_half_a_file() -> anyhow::Result<()> {
    use muster_proto::contacts::v1::{
        ImportHeader, UploadImportRequest, upload_import_request::Part,
    };
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let bytes = std::fs::read(data_file("nationbuilder-people-export.csv"))?;
    let header = ImportHeader {
        file_name: "cut.csv".into(),
        preset: ImportPreset::Nationbuilder as i32,
        size_bytes: bytes.len() as u64,
        ..Default::default()
    };
    let parts = vec![
        UploadImportRequest {
            part: Some(Part::Header(header)),
        },
        UploadImportRequest {
            part: Some(Part::Chunk(bytes[..bytes.len() / 2].to_vec())),
        },
    ];
    let mut client = stack.contacts(tenant).await?;
    let refused = client
        .upload_import(futures::stream::iter(parts))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("send the file again"),
        "{}",
        refused.message()
    );

    let people: i64 = sqlx::query_scalar("SELECT count(*) FROM people WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&stack.contacts_pool)
        .await?;
    assert_eq!(people, 0);
    stack.stop().await
}

#[tokio::test]
async fn people_are_placed_in_their_commune_departement_region_and_time_zone() -> anyhow::Result<()>
{
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let path = data_file("adherents-export-excel-fr.csv");
    stack.import(tenant, &path, ImportPreset::FrExcel).await?;

    let placed = |email: &'static str| {
        let pool = stack.contacts_pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, String, String)>(
                "SELECT commune_insee, departement, region, time_zone FROM people
                 WHERE tenant_id = $1 AND email_key = $2",
            )
            .bind(tenant)
            .bind(email)
            .fetch_one(&pool)
            .await
        }
    };
    let marcelle = placed("marcelle.rousset@mail.example.fr").await?;
    assert_eq!(
        marcelle,
        (
            "94019".into(),
            "94".into(),
            "11".into(),
            "Europe/Paris".into()
        )
    );
    let daniel = placed("daniel.marchand@exemple.test").await?;
    assert_eq!(
        daniel,
        (
            "97415".into(),
            "974".into(),
            "04".into(),
            "Indian/Reunion".into()
        )
    );

    let mut contacts = stack.contacts(tenant).await?;
    let count = |regions: Vec<String>| muster_proto::contacts::v1::CountSegmentRequest {
        filter: Some(SegmentFilter {
            regions,
            ..Default::default()
        }),
    };
    let reunion = contacts
        .count_segment(count(vec!["04".into()]))
        .await?
        .into_inner()
        .count;
    let expected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND postal_code LIKE '974%'",
    )
    .bind(tenant)
    .fetch_one(&stack.contacts_pool)
    .await?;
    assert!(reunion > 0);
    assert_eq!(
        reunion as i64, expected,
        "every 974 postal code is in La Réunion"
    );
    stack.stop().await
}
