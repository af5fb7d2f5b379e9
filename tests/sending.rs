//! A campaign never sends anyone the same message twice: not after a pause
//! and a resume, not with two senders on one queue, not when a sender dies
//! or the service restarts; and an unsubscribe stops later sends.

use std::collections::HashSet;
use std::time::Duration;

use muster_e2e::{Stack, data_file};
use muster_messaging::Mode;
use muster_proto::contacts::v1 as contacts;
use muster_proto::messaging::v1 as messaging;
use muster_runtime::TenantId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Imports the Mailchimp subscribed export; returns who may be e-mailed.
async fn audience(stack: &Stack, tenant: TenantId) -> anyhow::Result<HashSet<String>> {
    let path = data_file("mailchimp-audience-subscribed.csv");
    stack
        .import(tenant, &path, contacts::ImportPreset::MailchimpSubscribed)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT email_key FROM people WHERE tenant_id = $1 AND email_consent = 'granted'",
    )
    .bind(tenant)
    .fetch_all(&stack.contacts_pool)
    .await?
    .into_iter()
    .collect())
}

/// Asserts nobody received two messages and returns who received one.
fn received_once_each(stack: &Stack) -> anyhow::Result<HashSet<String>> {
    let received = stack.received_by_recipient()?;
    let doubled: Vec<_> = received
        .iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|(r, _)| r)
        .collect();
    assert!(doubled.is_empty(), "received twice: {doubled:?}");
    Ok(received.into_keys().collect())
}

async fn deliveries_in(
    stack: &Stack,
    campaign: &str,
    state: &str,
) -> anyhow::Result<HashSet<String>> {
    Ok(sqlx::query_scalar(
        "SELECT lower(email) FROM deliveries WHERE campaign_id = $1::uuid AND state = $2",
    )
    .bind(campaign)
    .bind(state)
    .fetch_all(&stack.messaging_pool)
    .await?
    .into_iter()
    .collect())
}

/// A sender process: its task (abort it to kill the process) and its stop token.
type SenderProcess = (JoinHandle<anyhow::Result<()>>, CancellationToken);

/// Messaging split as in production: the API, a relay, and `senders` senders.
async fn stack_with_senders(senders: usize) -> anyhow::Result<(Stack, Vec<SenderProcess>)> {
    let stack = Stack::start_with(Mode::Serve).await?;
    stack.spawn_messaging(Mode::Relay).await?;
    let mut processes = Vec::new();
    for _ in 0..senders {
        processes.push(stack.spawn_messaging(Mode::Worker).await?);
    }
    Ok((stack, processes))
}

fn sent_so_far(campaign: &messaging::Campaign) -> u64 {
    campaign.counts.map(|c| c.sent).unwrap_or(0)
}

#[tokio::test]
async fn pausing_and_resuming_never_sends_anyone_twice() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let expected = audience(&stack, tenant).await?;
    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    stack
        .wait_campaign(tenant, &campaign.id, |c| sent_so_far(c) >= 200)
        .await?;

    let mut client = stack.messaging(tenant).await?;
    let action = || messaging::CampaignActionRequest {
        id: campaign.id.clone(),
    };
    client.pause_campaign(action()).await?;
    let paused = stack
        .wait_campaign(tenant, &campaign.id, |c| {
            c.counts.is_some_and(|n| n.sending == 0)
        })
        .await?;
    let received_at_pause = stack.sink.messages()?.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack.sink.messages()?.len(),
        received_at_pause,
        "sent while paused"
    );
    assert!(
        (received_at_pause as u64) < paused.counts.unwrap().total,
        "paused too late to test"
    );

    client.resume_campaign(action()).await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!(done.counts.unwrap().sent as usize, expected.len());
    assert_eq!(received_once_each(&stack)?, expected);
    stack.stop().await
}

#[tokio::test]
async fn a_cancelled_campaign_sends_nothing_more_and_cannot_be_launched_or_resumed()
-> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let expected = audience(&stack, tenant).await?;
    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    stack
        .wait_campaign(tenant, &campaign.id, |c| sent_so_far(c) >= 200)
        .await?;

    let mut client = stack.messaging(tenant).await?;
    let action = || messaging::CampaignActionRequest {
        id: campaign.id.clone(),
    };
    // Launching again is a harmless retry: nothing is materialised twice.
    let again = client.launch_campaign(action()).await?.into_inner();
    assert_eq!(again.state, messaging::CampaignState::Sending as i32);
    assert_eq!(
        again.counts.unwrap_or_default().total as usize,
        expected.len()
    );
    client.cancel_campaign(action()).await?;
    let cancelled = stack
        .wait_campaign(tenant, &campaign.id, |c| {
            c.counts.is_some_and(|n| n.sending == 0)
        })
        .await?;
    let received_at_cancel = stack.sink.messages()?.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.sink.messages()?.len(),
        received_at_cancel,
        "sent after the cancel"
    );

    let counts = cancelled.counts.unwrap_or_default();
    assert!(
        counts.cancelled > 0,
        "cancelled too late to test: {counts:?}"
    );
    assert_eq!(counts.queued, 0, "{counts:?}");
    assert_eq!(
        counts.sent + counts.cancelled + counts.suppressed + counts.failed + counts.unknown,
        counts.total,
        "{counts:?}"
    );
    let received = received_once_each(&stack)?;
    assert_eq!(received.len() as u64, counts.sent, "{counts:?}");
    assert!(received.is_subset(&expected));
    for refused in [
        client.resume_campaign(action()).await.map(|_| ()),
        client.launch_campaign(action()).await.map(|_| ()),
    ] {
        assert_eq!(refused.unwrap_err().code(), tonic::Code::FailedPrecondition);
    }
    stack.stop().await
}

#[tokio::test]
async fn two_launches_of_one_campaign_at_once_materialise_and_send_it_once() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let expected = audience(&stack, tenant).await?;
    let campaign = stack
        .create_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let (mut first, mut second) = (
        stack.messaging(tenant).await?,
        stack.messaging(tenant).await?,
    );
    let action = || messaging::CampaignActionRequest {
        id: campaign.id.clone(),
    };
    let (a, b) = tokio::join!(
        first.launch_campaign(action()),
        second.launch_campaign(action())
    );
    // Both calls succeed (a launch is safe to retry); one materialises.
    assert!(a.is_ok() && b.is_ok(), "{a:?} / {b:?}");

    let done = stack.wait_completed(tenant, &campaign.id).await?;
    let counts = done.counts.unwrap_or_default();
    assert_eq!(counts.total as usize, expected.len(), "{counts:?}");
    assert_eq!(counts.sent as usize, expected.len(), "{counts:?}");
    assert_eq!(received_once_each(&stack)?, expected);
    stack.stop().await
}

#[tokio::test]
async fn two_senders_on_one_queue_never_send_anyone_twice() -> anyhow::Result<()> {
    let (stack, _senders) = stack_with_senders(2).await?;
    let tenant = TenantId::new();
    let expected = audience(&stack, tenant).await?;

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!(done.counts.unwrap().sent as usize, expected.len());
    assert_eq!(received_once_each(&stack)?, expected);
    stack.stop().await
}

#[tokio::test]
async fn a_killed_sender_never_doubles_a_send_and_reports_what_it_left_unknown()
-> anyhow::Result<()> {
    let (stack, mut senders) = stack_with_senders(1).await?;
    let (doomed, _) = senders.remove(0);
    let tenant = TenantId::new();
    let expected = audience(&stack, tenant).await?;

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    stack
        .wait_campaign(tenant, &campaign.id, |c| sent_so_far(c) >= 300)
        .await?;
    doomed.abort();
    let _ = doomed.await;
    let (_replacement, _) = stack.spawn_messaging(Mode::Worker).await?;

    let done = stack.wait_completed(tenant, &campaign.id).await?;
    let counts = done.counts.unwrap();
    assert_eq!(counts.sent + counts.unknown, counts.total, "{counts:?}");
    assert_eq!(counts.total as usize, expected.len());

    let received = received_once_each(&stack)?;
    let sent = deliveries_in(&stack, &campaign.id, "sent").await?;
    let unknown = deliveries_in(&stack, &campaign.id, "unknown").await?;
    assert!(
        sent.is_subset(&received),
        "a delivery recorded sent was not received"
    );
    assert!(
        received.is_subset(&expected),
        "someone outside the audience received it"
    );
    let lost: Vec<_> = expected
        .difference(&received)
        .filter(|e| !unknown.contains(*e))
        .collect();
    assert!(
        lost.is_empty(),
        "neither received nor reported unknown: {lost:?}"
    );
    stack.stop().await
}

#[tokio::test]
async fn a_restarted_service_never_sends_anyone_twice() -> anyhow::Result<()> {
    let (stack, mut senders) = stack_with_senders(1).await?;
    let (first, stop_first) = senders.remove(0);
    let tenant = TenantId::new();
    let expected = audience(&stack, tenant).await?;

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    stack
        .wait_campaign(tenant, &campaign.id, |c| sent_so_far(c) >= 300)
        .await?;
    stop_first.cancel();
    first.await??;
    let midway = stack.sink.messages()?.len();
    assert!(
        midway < expected.len(),
        "the campaign ended before the restart"
    );
    let (_second, _) = stack.spawn_messaging(Mode::Worker).await?;

    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!(
        done.counts.unwrap().sent as usize,
        expected.len(),
        "{:?}",
        done.counts
    );
    assert_eq!(received_once_each(&stack)?, expected);
    stack.stop().await
}

#[tokio::test]
async fn an_unsubscribe_link_stops_later_campaigns_and_reaches_contacts() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let expected = audience(&stack, tenant).await?;
    let segment = contacts::SegmentFilter {
        tags_any: vec!["jeunes".into()],
        ..Default::default()
    };
    let first = stack.launch_campaign(tenant, segment.clone()).await?;
    stack.wait_completed(tenant, &first.id).await?;

    let received = stack.sink.messages()?;
    let message = &received[0];
    let leaver = message.recipients[0].to_lowercase();
    assert!(expected.contains(&leaver));
    let token = message
        .raw
        .lines()
        .find_map(|line| line.strip_prefix("List-Unsubscribe: <"))
        .and_then(|rest| rest.split("/u/").nth(1))
        .map(|rest| rest.trim_end_matches('>').to_owned())
        .expect("a List-Unsubscribe header with a link");

    let mut service = stack.messaging_as_service().await?;
    let request = || messaging::UnsubscribeRequest {
        token: token.clone(),
        method: "one-click".into(),
    };
    let seen = service.inspect_unsubscribe(request()).await?.into_inner();
    assert!(!seen.already_unsubscribed);
    assert!(seen.masked_email.contains("***@"), "{}", seen.masked_email);
    let done = service.unsubscribe(request()).await?.into_inner();
    assert!(!done.already_unsubscribed);
    let again = service.unsubscribe(request()).await?.into_inner();
    assert!(
        again.already_unsubscribed,
        "a second unsubscribe is a no-op"
    );
    let forged = service
        .unsubscribe(messaging::UnsubscribeRequest {
            token: format!("{token}x"),
            method: "link".into(),
        })
        .await;
    assert_eq!(forged.unwrap_err().code(), tonic::Code::InvalidArgument);

    let mut withdrawn = false;
    for _ in 0..100 {
        let state: String = sqlx::query_scalar(
            "SELECT email_consent FROM people WHERE tenant_id = $1 AND email_key = $2",
        )
        .bind(tenant)
        .bind(&leaver)
        .fetch_one(&stack.contacts_pool)
        .await?;
        if state == "withdrawn" {
            withdrawn = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(withdrawn, "contacts never recorded the unsubscribe");

    let second = stack.launch_campaign(tenant, segment).await?;
    let done = stack.wait_completed(tenant, &second.id).await?;
    let counts = done.counts.unwrap();
    assert!(counts.sent > 0);
    let per_recipient = stack.received_by_recipient()?;
    assert_eq!(
        per_recipient[&leaver].len(),
        1,
        "the unsubscribed person got the second campaign"
    );
    assert!(
        per_recipient
            .iter()
            .filter(|(r, _)| **r != leaver)
            .all(|(_, m)| m.len() == 2)
    );
    stack.stop().await
}

#[tokio::test]
async fn a_line_break_in_a_name_neither_adds_a_header_nor_stops_the_sender() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let file = std::env::temp_dir().join(format!("crlf-{}.csv", muster_testkit::unique()));
    std::fs::write(
        &file,
        "email,first,consent,consent_time\r\n\
         zoe@example.org,\"Zoé\r\nBcc: victim@example.net\",oui,2026-01-01 10:00\r\n",
    )?;
    let mapping = contacts::ColumnMapping {
        email: "email".into(),
        first_name: "first".into(),
        email_consent: "consent".into(),
        email_consent_time: "consent_time".into(),
        ..Default::default()
    };
    let job = stack.import_custom(tenant, &file, mapping).await?;
    assert_eq!(job.counts.unwrap().consent_granted, 1, "{job:?}");

    let refused = stack
        .create_campaign_from(
            tenant,
            contacts::SegmentFilter::default(),
            "Équipe\r\nBcc: x@example.net",
        )
        .await;
    let status = refused.unwrap_err().downcast::<tonic::Status>()?;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("campaign.from_name"),
        "{}",
        status.message()
    );

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!(done.counts.unwrap().sent, 1);
    let raw = stack.sink.messages()?.remove(0).raw;
    let headers = raw.split("\n\n").next().unwrap_or_default();
    assert!(headers.contains("To: =?utf-8?"), "{headers}");
    assert!(
        !headers.lines().any(|line| line.starts_with("Bcc:")),
        "{headers}"
    );
    std::fs::remove_file(file)?;
    stack.stop().await
}
