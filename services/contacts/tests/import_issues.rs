//! An import's issues against a real contacts service and its own database:
//! rows dealt to several writers record their issues out of order, and the
//! list pages through them in file order.

use muster_proto::contacts::v1 as pb;
use muster_runtime::TenantId;

mod support;

use support::Service;

#[tokio::test]
async fn issues_are_listed_in_file_order_page_after_page() -> anyhow::Result<()> {
    let service = Service::start("issues").await?;
    let mut client = service.client(TenantId::new()).await?;
    let mut csv = String::from("email,phone,Remarque\n");
    for n in 0..3_000 {
        let phone = if n % 3 == 0 { "not a number" } else { "" };
        csv.push_str(&format!("p{n}@example.org,{phone},\n"));
    }
    let job = support::upload(&mut client, email_and_phone(), &csv).await?;

    let mut lines = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_import_issues(pb::ListImportIssuesRequest {
                import_id: job.id.clone(),
                page_size: 97,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        lines.extend(page.issues.iter().map(|issue| issue.line));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    let mut expected = vec![1];
    expected.extend((0..3_000u64).filter(|n| n % 3 == 0).map(|n| n + 2));
    assert_eq!(
        lines, expected,
        "the header's warning, then each bad row in file order"
    );
    service.stop().await
}

#[tokio::test]
async fn a_page_token_of_another_import_and_a_negative_page_size_are_refused() -> anyhow::Result<()>
{
    let service = Service::start("issues").await?;
    let mut client = service.client(TenantId::new()).await?;
    let csv = "email,phone\na@example.org,x\nb@example.org,y\nc@example.org,z\n";
    let first = support::upload(&mut client, email_and_phone(), csv).await?;
    let second = support::upload(&mut client, email_and_phone(), csv).await?;
    let list =
        |import: &pb::ImportJob, page_size: i32, page_token: &str| pb::ListImportIssuesRequest {
            import_id: import.id.clone(),
            page_size,
            page_token: page_token.into(),
        };
    let page = client
        .list_import_issues(list(&first, 1, ""))
        .await?
        .into_inner();
    assert_eq!(page.issues.len(), 1);
    assert!(!page.next_page_token.is_empty());

    let elsewhere = client
        .list_import_issues(list(&second, 1, &page.next_page_token))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), tonic::Code::InvalidArgument);
    assert!(
        elsewhere
            .message()
            .starts_with("page_token: this token is from the listing of another"),
        "{elsewhere:?}"
    );
    let next = client
        .list_import_issues(list(&first, 5, &page.next_page_token))
        .await?
        .into_inner();
    assert_eq!(next.issues.len(), 2, "the token goes on in its own import");

    let negative = client
        .list_import_issues(list(&first, -1, ""))
        .await
        .unwrap_err();
    assert!(
        negative.message().starts_with("page_size: -1 is negative"),
        "{negative:?}"
    );
    service.stop().await
}

/// The issues of `job` as (line, field, reason).
async fn issues_of(
    client: &mut support::Client,
    job: &pb::ImportJob,
) -> anyhow::Result<Vec<(u64, String, String)>> {
    Ok(support::issues(client, job)
        .await?
        .into_iter()
        .map(|issue| (issue.line, issue.field, issue.reason))
        .collect())
}

/// A file of columns `email` and `phone`, mapped as such.
fn email_and_phone() -> pb::ImportHeader {
    pb::ImportHeader {
        file_name: "issues.csv".into(),
        preset: pb::ImportPreset::Custom as i32,
        mapping: Some(pb::ColumnMapping {
            email: "email".into(),
            phone: "phone".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn people_without_e_mail_share_a_number_and_rows_go_to_the_one_they_name()
-> anyhow::Result<()> {
    let service = Service::start("shared_phone").await?;
    let mut client = service.client(TenantId::new()).await?;
    let header = || pb::ImportHeader {
        file_name: "famille.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let first = "Prénom;Nom;E-mail;Téléphone\nJean;Famille;;01 44 55 66 77\n";
    support::upload(&mut client, header(), first).await?;

    // The same number: Jean again (any case or accent), a row without a name
    // (Jean is the only one on the number yet), then Marie and Paul, who are
    // other people, and Marie with an e-mail address: within one import, a
    // row with an address joins only someone known before it (detection
    // lists the two Maries).
    let second = "Prénom;Nom;E-mail;Téléphone\n\
                  JEAN;FAMILLE;;01 44 55 66 77\n\
                  ;;;+33144556677\n\
                  Marie;Famille;;01 44 55 66 77\n\
                  Paul;Autre;;01.44.55.66.77\n\
                  Marie;Famille;marie@example.org;01 44 55 66 77\n";
    let job = support::upload(&mut client, header(), second).await?;

    let counts = job.counts.unwrap_or_default();
    assert_eq!(
        (counts.created, counts.merged, counts.rejected),
        (3, 2, 0),
        "Jean and the nameless row are Jean; Marie, Paul and Marie with her e-mail are new"
    );
    let names: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT first_name, email FROM people WHERE phone = '+33144556677' ORDER BY id",
    )
    .fetch_all(&service.pool)
    .await?;
    let first_names: Vec<Option<&str>> = names.iter().map(|(n, _)| n.as_deref()).collect();
    assert_eq!(
        first_names,
        [Some("Jean"), Some("Marie"), Some("Paul"), Some("Marie")]
    );

    // Now three people without e-mail share the number: a row must say which
    // one it is (Marie with an e-mail address is not among them).
    let third = "Prénom;Nom;E-mail;Téléphone\n\
                 ;;;01 44 55 66 77\n\
                 ;Famille;pas-une-adresse;01 44 55 66 77\n\
                 marie;famille;;01 44 55 66 77\n\
                 paul;AUTRE;;01 44 55 66 77\n";
    let job = support::upload(&mut client, header(), third).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!(
        (counts.created, counts.merged, counts.rejected),
        (0, 2, 2),
        "{counts:?}"
    );
    let issues = issues_of(&mut client, &job).await?;
    let lines: Vec<(u64, &str)> = issues.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    assert_eq!(
        lines,
        [(2, "phone"), (3, "email"), (3, "phone")],
        "the row's own issues stay with it: {issues:?}"
    );
    assert!(
        issues[0].2.starts_with(
            "no e-mail address, and 3 people on this phone number could be this row: nothing \
             on it tells which one"
        ),
        "{issues:?}"
    );
    assert!(issues[2].2.contains(" 2 people "), "not Paul: {issues:?}");

    // Two outside records on one number, in one file: two people.
    let nation = pb::ImportHeader {
        file_name: "nb.csv".into(),
        preset: pb::ImportPreset::Nationbuilder as i32,
        ..Default::default()
    };
    let rows = "nationbuilder_id,first_name,last_name,email1,mobile_number\n\
                101,Lou,Roy,,06 12 34 56 78\n\
                102,Lou,Roy,,06 12 34 56 78\n\
                101,Lou,Roy,,06 12 34 56 78\n";
    let job = support::upload(&mut client, nation, rows).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!(
        (counts.created, counts.merged, counts.rejected),
        (2, 1, 0),
        "{counts:?}"
    );
    service.stop().await
}

#[tokio::test]
async fn a_row_with_e_mail_and_one_without_are_one_person_when_number_and_name_agree()
-> anyhow::Result<()> {
    let service = Service::start("phone_and_email").await?;
    let mut client = service.client(TenantId::new()).await?;
    let header = || pb::ImportHeader {
        file_name: "famille.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let first = "Prénom;Nom;E-mail;Téléphone\n\
                 Jean;Martin;;02 97 22 11 00\n\
                 Claire;Quéré;claire@example.org;02 99 44 55 66\n\
                 Anne;Martin;;02 97 22 11 00\n";
    let job = support::upload(&mut client, header(), first).await?;
    assert_eq!(job.counts.unwrap_or_default().created, 3);

    // Jean's address joins Jean; Paul, a new address on the Martins' number,
    // is someone else. A row without e-mail is not matched to someone with
    // one: Claire without e-mail waits in duplicate review.
    let second = "Prénom;Nom;E-mail;Téléphone\n\
                  JEAN;MARTIN;jean.martin@example.org;02 97 22 11 00\n\
                  Claire;Quere;;02 99 44 55 66\n\
                  Paul;Martin;paul@example.org;02 97 22 11 00\n";
    let job = support::upload(&mut client, header(), second).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!(
        (counts.created, counts.merged, counts.rejected),
        (2, 1, 0),
        "{counts:?}"
    );
    let people: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT first_name, email, phone FROM people ORDER BY first_name, email")
            .fetch_all(&service.pool)
            .await?;
    let people: Vec<(&str, Option<&str>, &str)> = people
        .iter()
        .map(|(name, email, phone)| (name.as_str(), email.as_deref(), phone.as_str()))
        .collect();
    let (martins, quere) = ("+33297221100", "+33299445566");
    assert_eq!(
        people,
        [
            ("Anne", None, martins),
            ("Claire", Some("claire@example.org"), quere),
            ("Claire", None, quere),
            ("Jean", Some("jean.martin@example.org"), martins),
            ("Paul", Some("paul@example.org"), martins),
        ]
    );

    // Jean's address again, now his: by address, as any other.
    let third = "Prénom;Nom;E-mail;Téléphone\n\
                 Jean;Martin;jean.martin@example.org;02 97 22 11 00\n";
    let job = support::upload(&mut client, header(), third).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.created, counts.merged), (0, 1), "{counts:?}");
    service.stop().await
}

#[tokio::test]
async fn a_later_row_of_a_person_fills_what_the_earlier_ones_left_empty() -> anyhow::Result<()> {
    let service = Service::start("later_rows").await?;
    let mut client = service.client(TenantId::new()).await?;
    let header = pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let file = "Prénom;Nom;E-mail;Téléphone;Adresse;Code postal;Ville\n\
                Alain;Kerjean;a.kerjean@example.org;;;56120;\n\
                Alain;Kerjean;a.kerjean@example.org;06 55 44 33 22;9 rue Gare;56120;Josselin\n\
                ;;a.kerjean@example.org;;1 place du Marché;56000;Vannes\n\
                Nina;Blanc;nina@example.org;;;69007;Lyon\n\
                Nina;Blanc;nina@example.org;;4 rue Béchevelin;69007;Lyon\n";

    let job = support::upload(&mut client, header, file).await?;

    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.created, counts.merged), (2, 3), "{counts:?}");
    let issues = issues_of(&mut client, &job).await?;
    let lines: Vec<(u64, &str)> = issues.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    // (The file's count of rows without a commune is read row by row, before
    // the rows of one person are put together: Alain's first row is in it.)
    assert_eq!(
        lines,
        [(0, "city"), (4, "address")],
        "the Vannes row: {issues:?}"
    );
    let person: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT phone, address_line1, city, commune_insee FROM people
         WHERE email = 'a.kerjean@example.org'",
    )
    .fetch_one(&service.pool)
    .await?;
    assert_eq!(
        person,
        (
            Some("+33655443322".into()),
            Some("9 rue Gare".into()),
            Some("Josselin".into()),
            Some("56091".into())
        ),
        "the phone from the second row, and its fuller address of the same postal code"
    );

    // A street in the same postal code and commune is taken too.
    let street: Option<String> =
        sqlx::query_scalar("SELECT address_line1 FROM people WHERE email = 'nina@example.org'")
            .fetch_one(&service.pool)
            .await?;
    assert_eq!(street.as_deref(), Some("4 rue Béchevelin"));

    // A later file: the same address says nothing; another one is named.
    let header = || pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let same = "Prénom;Nom;E-mail;Adresse;Code postal;Ville\n\
                Alain;Kerjean;a.kerjean@example.org;9 RUE GARE;56120;Josselin\n";
    let job = support::upload(&mut client, header(), same).await?;
    assert_eq!(job.counts.unwrap_or_default().warnings, 0);
    let moved = "Prénom;Nom;E-mail;Adresse;Code postal;Ville\n\
                 Alain;Kerjean;a.kerjean@example.org;1 place du Marché;56000;Vannes\n";
    let job = support::upload(&mut client, header(), moved).await?;
    let issues = issues_of(&mut client, &job).await?;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!((issues[0].0, issues[0].1.as_str()), (2, "address"));
    assert!(issues[0].2.contains("if they moved"), "{issues:?}");

    // Across files too, a street in the same postal code and commune fills it.
    let bare = "Prénom;Nom;E-mail;Adresse;Code postal;Ville\n\
                Léo;Roux;leo@example.org;;69007;Lyon\n";
    support::upload(&mut client, header(), bare).await?;
    let full = "Prénom;Nom;E-mail;Adresse;Code postal;Ville\n\
                Léo;Roux;leo@example.org;6 rue Béchevelin;69007;Lyon\n";
    let job = support::upload(&mut client, header(), full).await?;
    assert_eq!(job.counts.unwrap_or_default().warnings, 0);
    let street: Option<String> =
        sqlx::query_scalar("SELECT address_line1 FROM people WHERE email = 'leo@example.org'")
            .fetch_one(&service.pool)
            .await?;
    assert_eq!(street.as_deref(), Some("6 rue Béchevelin"));
    service.stop().await
}

#[tokio::test]
async fn a_row_merged_by_address_into_someone_of_another_name_is_named() -> anyhow::Result<()> {
    let service = Service::start("another_name").await?;
    let mut client = service.client(TenantId::new()).await?;
    let header = || pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let columns = "Prénom;Nom;E-mail\n";
    let first = format!(
        "{columns}Marie;Dupont;famille.dupont@example.org\n\
         Paul;Dupont;famille.dupont@example.org\n\
         MARIE;dupont;FAMILLE.DUPONT@example.org\n\
         Léa;Roux;lea@example.org\n\
         Yann;Le Bihan;yann@example.org\n\
         Yann;LE-BIHAN;yann@example.org\n"
    );
    let job = support::upload(&mut client, header(), &first).await?;
    assert_eq!(job.counts.unwrap_or_default().warnings, 1);
    let issues = issues_of(&mut client, &job).await?;
    let lines: Vec<(u64, &str)> = issues.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    assert_eq!(lines, [(3, "email")], "Paul's row only: {issues:?}");
    assert!(
        issues[0].2.contains("into a person of another name"),
        "{issues:?}"
    );

    // Against the person already known, in a later file; a name they lacked is no contradiction.
    let again = format!(
        "{columns}Marc;Henry;famille.dupont@example.org\n\
         Lea;;lea@example.org\n"
    );
    let job = support::upload(&mut client, header(), &again).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.merged, counts.warnings), (2, 1), "{counts:?}");
    let issues = issues_of(&mut client, &job).await?;
    let lines: Vec<(u64, &str)> = issues.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    assert_eq!(lines, [(2, "email")], "Marc's row only: {issues:?}");
    service.stop().await
}

#[tokio::test]
async fn a_grant_to_someone_who_withdrew_is_named_on_its_row() -> anyhow::Result<()> {
    let service = Service::start("regrant").await?;
    let mut client = service.client(TenantId::new()).await?;
    let header = || pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let columns = "Prénom;Nom;E-mail;Consentement e-mail;Date du consentement\n";
    let first = format!(
        "{columns}Bruno;B;bruno@example.org;non;01/09/2024\n\
         Pia;P;pia@example.org;non;01/09/2024\n\
         Pia;P;pia@example.org;oui;02/09/2024\n"
    );
    let job = support::upload(&mut client, header(), &first).await?;
    let issues = issues_of(&mut client, &job).await?;
    let lines: Vec<(u64, &str)> = issues.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    assert_eq!(lines, [(4, "email_consent")], "{issues:?}");
    assert!(
        issues[0].2.starts_with("not granted: this person withdrew"),
        "{issues:?}"
    );

    let again = format!(
        "{columns}Bruno;B;bruno@example.org;oui;01/11/2024\n\
         Cléo;C;cleo@example.org;oui;01/11/2024\n"
    );
    let job = support::upload(&mut client, header(), &again).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!(
        (counts.consent_granted, counts.warnings),
        (1, 1),
        "{counts:?}"
    );
    let issues = issues_of(&mut client, &job).await?;
    let lines: Vec<(u64, &str)> = issues.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    assert_eq!(lines, [(2, "email_consent")], "only Bruno's: {issues:?}");
    service.stop().await
}

#[tokio::test]
async fn a_title_above_the_header_is_named_on_the_header_line() -> anyhow::Result<()> {
    let service = Service::start("title_row").await?;
    let mut client = service.client(TenantId::new()).await?;
    let header = pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let file = "Adhérents au 1er décembre;;;\n\
                Prénom;Nom;E-mail;Profession\n\
                Marie;Dupont;marie@example.org;infirmière\n";

    let job = support::upload(&mut client, header, file).await?;

    assert_eq!(job.counts.unwrap_or_default().created, 1);
    let issues = issues_of(&mut client, &job).await?;
    let lines: Vec<(u64, &str)> = issues.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    assert_eq!(lines, [(2, "header"), (2, "header")], "{issues:?}");
    assert!(
        issues
            .iter()
            .any(|(_, _, reason)| reason.contains("\"Adhérents au 1er décembre\"")),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|(_, _, reason)| reason.contains("\"Profession\"")),
        "the unread column is named on the header's line: {issues:?}"
    );
    service.stop().await
}

#[tokio::test]
async fn a_file_with_a_header_and_no_rows_says_so() -> anyhow::Result<()> {
    let service = Service::start("header_only").await?;
    let mut client = service.client(TenantId::new()).await?;
    let header = pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let file = "sep=;\nPrénom;Nom;E-mail\n";

    let job = support::upload(&mut client, header, file).await?;

    assert_eq!(job.state, pb::ImportState::Succeeded as i32, "{job:?}");
    assert_eq!(job.counts.unwrap_or_default().rows_read, 0);
    let issues = issues_of(&mut client, &job).await?;
    assert_eq!(issues.len(), 1, "{issues:?}");
    let (line, field, reason) = &issues[0];
    assert_eq!((*line, field.as_str()), (2, "header"), "{issues:?}");
    assert!(reason.contains("no line below its header"), "{reason}");
    service.stop().await
}

#[tokio::test]
async fn a_postal_code_several_communes_share_without_a_town_places_no_commune()
-> anyhow::Result<()> {
    let service = Service::start("shared_postal_code").await?;
    let mut client = service.client(TenantId::new()).await?;
    let header = pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let file = "Prénom;Nom;E-mail;Code postal;Ville\n\
                Marie;Dupont;marie@example.org;56120;\n\
                Paul;Roy;paul@example.org;33000;\n\
                Lou;Gall;lou@example.org;56120;Josselin\n";

    let job = support::upload(&mut client, header, file).await?;

    let issues = issues_of(&mut client, &job).await?;
    let lines: Vec<(u64, &str)> = issues.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    assert_eq!(lines, [(0, "city")], "{issues:?}");
    assert!(
        issues[0].2.starts_with("1 row(s) have a postal code"),
        "{issues:?}"
    );
    let places: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT email, commune_insee, departement FROM people ORDER BY email")
            .fetch_all(&service.pool)
            .await?;
    let place = |email: &str| {
        places
            .iter()
            .find(|(e, ..)| e == email)
            .map(|(_, commune, departement)| (commune.clone(), departement.clone()))
    };
    assert_eq!(place("marie@example.org"), Some((None, Some("56".into()))));
    assert_eq!(
        place("paul@example.org"),
        Some((Some("33063".into()), Some("33".into())))
    );
    assert_eq!(
        place("lou@example.org"),
        Some((Some("56091".into()), Some("56".into())))
    );
    service.stop().await
}
