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
