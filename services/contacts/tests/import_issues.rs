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
    let header = pb::ImportHeader {
        file_name: "issues.csv".into(),
        preset: pb::ImportPreset::Custom as i32,
        mapping: Some(pb::ColumnMapping {
            email: "email".into(),
            phone: "phone".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let job = support::upload(&mut client, header, &csv).await?;

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
    let header = || pb::ImportHeader {
        file_name: "issues.csv".into(),
        preset: pb::ImportPreset::Custom as i32,
        mapping: Some(pb::ColumnMapping {
            email: "email".into(),
            phone: "phone".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let first = support::upload(&mut client, header(), csv).await?;
    let second = support::upload(&mut client, header(), csv).await?;
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
