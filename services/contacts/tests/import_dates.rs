//! Dates and yes/no answers as French Excel writes them, through a real
//! import into a contacts service with its own database and queues: birth
//! dates in every form a spreadsheet leaves are stored as that day, the ones
//! that cannot be a birth date are named on their row, and `VRAI` grants
//! consent from a date alone, read as midnight in France.

use chrono::{DateTime, Days, NaiveDate, Utc};
use muster_contacts::Mode;
use muster_proto::contacts::v1 as pb;
use muster_runtime::TenantId;

mod support;

use support::{Client, Service};

/// A person as stored: e-mail, birth date, e-mail consent state and time.
type Stored = (String, Option<NaiveDate>, String, Option<DateTime<Utc>>);

async fn upload(client: &mut Client, csv: &str) -> anyhow::Result<pb::ImportJob> {
    let header = pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    support::upload(client, header, csv).await
}

#[tokio::test]
async fn a_french_excel_file_gives_its_birth_dates_and_its_vrai_and_faux_consent()
-> anyhow::Result<()> {
    let service = Service::start_as("import_dates", Mode::All).await?;
    let tenant = TenantId::new();
    let mut client = service.client(tenant).await?;
    let next_month = Utc::now().date_naive() + Days::new(30);
    let future = next_month.format("%d/%m/%Y").to_string();
    let csv = format!(
        "Prénom;Nom;E-mail;Date de naissance;Consentement e-mail;Date du consentement\r\n\
         Ada;Lovelace;ada@example.org;18.02.1981;VRAI;01.09.2024\r\n\
         Bruno;Serial;bruno@example.org;29635;;\r\n\
         Chloé;Minuit;chloe@example.org;18/02/1981 00:00;;\r\n\
         Denis;Futur;denis@example.org;{future};;\r\n\
         Emma;Année;emma@example.org;1981;faux;01.09.2024\r\n"
    );

    let job = upload(&mut client, &csv).await?;

    let counts = job.counts.unwrap_or_default();
    assert_eq!(
        (counts.created, counts.rejected, counts.warnings),
        (5, 0, 2),
        "{job:?}"
    );
    assert_eq!(
        (counts.consent_granted, counts.suppressed),
        (1, 1),
        "{job:?}"
    );

    let stored: Vec<Stored> = sqlx::query_as(
        "SELECT email_key, birth_date, email_consent, email_consent_at FROM people
         WHERE tenant_id = $1 ORDER BY email_key",
    )
    .bind(tenant)
    .fetch_all(&service.pool)
    .await?;
    let born = NaiveDate::from_ymd_opt(1981, 2, 18);
    let french_midnight = "2024-08-31T22:00:00Z".parse::<DateTime<Utc>>()?;
    let none = |email: &str, birth_date| (email.to_owned(), birth_date, "none".to_owned(), None);
    assert_eq!(
        stored,
        [
            (
                "ada@example.org".to_owned(),
                born,
                "granted".to_owned(),
                Some(french_midnight)
            ),
            none("bruno@example.org", born),
            none("chloe@example.org", born),
            none("denis@example.org", None),
            // FAUX with a date: Emma said no then.
            (
                "emma@example.org".to_owned(),
                None,
                "withdrawn".to_owned(),
                Some(french_midnight)
            ),
        ]
    );

    let found: Vec<(u64, String, String, String)> = support::issues(&mut client, &job)
        .await?
        .into_iter()
        .map(|issue| (issue.line, issue.field, issue.value, issue.reason))
        .collect();
    assert_eq!(
        found,
        [
            (
                5,
                "birth_date".to_owned(),
                future,
                "in the future: check the day/month order or the year".to_owned()
            ),
            (
                6,
                "birth_date".to_owned(),
                "1981".to_owned(),
                "a year alone, not a date: give the full date, as 18/02/1981".to_owned()
            ),
        ]
    );
    service.stop().await
}
