//! What the SMTP server answers decides each delivery: a deferral is retried
//! with back-off and delivered once, a refusal fails with its reason, and a
//! session that breaks after the message left is reported unknown, never
//! sent again.

use std::collections::HashMap;

use muster_e2e::{Stack, data_file};
use muster_proto::contacts::v1 as contacts;
use muster_proto::messaging::v1 as messaging;
use muster_runtime::TenantId;

/// Imports the NationBuilder export and returns the segment of those tagged
/// `presse` who may be e-mailed, with its size.
async fn press(stack: &Stack, tenant: TenantId) -> anyhow::Result<(contacts::SegmentFilter, u64)> {
    let path = data_file("nationbuilder-people-export.csv");
    stack
        .import(tenant, &path, contacts::ImportPreset::Nationbuilder)
        .await?;
    let segment = contacts::SegmentFilter {
        tags_any: vec!["presse".into()],
        ..Default::default()
    };
    let reachable = contacts::SegmentFilter {
        email_consent: contacts::ConsentState::Granted as i32,
        require_email: true,
        ..segment.clone()
    };
    let mut client = stack.contacts(tenant).await?;
    let request = contacts::CountSegmentRequest {
        filter: Some(reachable),
    };
    let count = client.count_segment(request).await?.into_inner().count;
    assert!(count > 50, "{count}");
    Ok((segment, count))
}

async fn errors(stack: &Stack, campaign: &str) -> anyhow::Result<Vec<(String, i32, String)>> {
    Ok(sqlx::query_as(
        "SELECT state, attempts, COALESCE(error, '') FROM deliveries WHERE campaign_id = $1::uuid",
    )
    .bind(campaign)
    .fetch_all(&stack.messaging_pool)
    .await?)
}

fn counts(campaign: &messaging::Campaign) -> messaging::DeliveryCounts {
    campaign.counts.unwrap_or_default()
}

#[tokio::test]
async fn deferred_deliveries_are_retried_with_back_off_and_received_once() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    let tenant = TenantId::new();
    let (segment, count) = press(&stack, tenant).await?;
    stack.sink.restart_with(&["-r", "rcpt"]).await?;

    let campaign = stack.launch_campaign(tenant, segment).await?;
    let deferred = stack
        .wait_campaign(tenant, &campaign.id, |c| {
            let n = counts(c);
            n.total == count && n.queued == count
        })
        .await?;
    assert_eq!(counts(&deferred).sent, 0);
    let waiting = errors(&stack, &campaign.id).await?;
    assert!(
        waiting
            .iter()
            .all(|(_, _, error)| error.starts_with("will retry: deferred"))
    );
    stack.sink.restart_with(&[]).await?;

    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!(counts(&done).sent, count);
    let mut received: HashMap<String, usize> = HashMap::new();
    for message in stack.sink.messages()? {
        for recipient in message.recipients {
            *received.entry(recipient.to_lowercase()).or_default() += 1;
        }
    }
    assert_eq!(received.len() as u64, count);
    assert!(
        received.values().all(|n| *n == 1),
        "a deferred message was received twice"
    );
    let attempts = errors(&stack, &campaign.id).await?;
    assert!(
        attempts
            .iter()
            .all(|(state, tries, _)| state == "sent" && *tries >= 2)
    );
    stack.stop().await
}

#[tokio::test]
async fn a_refusing_server_fails_each_delivery_with_its_reason_and_no_retry() -> anyhow::Result<()>
{
    let mut stack = Stack::start().await?;
    let tenant = TenantId::new();
    let (segment, count) = press(&stack, tenant).await?;
    stack.sink.restart_with(&["-f", "rcpt"]).await?;

    let campaign = stack.launch_campaign(tenant, segment).await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!((counts(&done).failed, counts(&done).sent), (count, 0));
    let failed = errors(&stack, &campaign.id).await?;
    assert!(failed.iter().all(|(_, tries, error)| *tries == 1
        && error.starts_with("refused by the SMTP server")
        && error.contains('5')));
    assert!(stack.sink.messages()?.is_empty());
    stack.stop().await
}

#[tokio::test]
async fn a_session_broken_after_the_message_left_is_unknown_and_never_resent() -> anyhow::Result<()>
{
    let mut stack = Stack::start().await?;
    let tenant = TenantId::new();
    let (segment, count) = press(&stack, tenant).await?;
    stack.sink.restart_with(&["-q", "."]).await?;

    let campaign = stack.launch_campaign(tenant, segment).await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!(
        (counts(&done).unknown, counts(&done).sent),
        (count, 0),
        "{:?}",
        done.counts
    );
    let unknown = errors(&stack, &campaign.id).await?;
    assert!(
        unknown
            .iter()
            .all(|(_, tries, error)| *tries == 1 && error.contains("not sent again"))
    );
    let mut received: HashMap<String, usize> = HashMap::new();
    for message in stack.sink.messages()? {
        for recipient in message.recipients {
            *received.entry(recipient.to_lowercase()).or_default() += 1;
        }
    }
    assert!(
        received.values().all(|n| *n == 1),
        "an unknown delivery was sent again"
    );
    stack.stop().await
}
