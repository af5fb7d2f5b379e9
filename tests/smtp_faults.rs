//! What the SMTP server answers decides each delivery: a deferral is retried
//! with back-off and delivered once, a refusal fails with its reason, and a
//! session that breaks after the message left is reported unknown, never
//! sent again. Against a peer that answers each recipient its own way, one
//! recipient's fault touches nobody else, and an unsubscribe that commits
//! mid-campaign stops the mail still due to that recipient.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use muster_e2e::{Stack, data_file};
use muster_proto::contacts::v1 as contacts;
use muster_proto::messaging::v1 as messaging;
use muster_runtime::TenantId;
use muster_runtime::config::DatabaseSettings;
use muster_testkit::FaultSmtp;
use muster_testkit::fault_smtp::Stage;
use tokio_util::sync::CancellationToken;

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
    // Every delivery tried once and deferred (queued also describes them
    // before their first attempt: wait for the attempts).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let waiting = errors(&stack, &campaign.id).await?;
        let tried = |(_, attempts, error): &(String, i32, String)| {
            *attempts >= 1 && error.starts_with("will retry: deferred")
        };
        if waiting.len() as u64 == count && waiting.iter().all(tried) {
            break;
        }
        let untried: Vec<_> = waiting.iter().filter(|w| !tried(w)).take(3).collect();
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "not every delivery was tried and deferred, e.g. {untried:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deferred = stack.wait_campaign(tenant, &campaign.id, |_| true).await?;
    assert_eq!(counts(&deferred).sent, 0);
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

/// Imports `count` consenting supporters from a file written for the test;
/// those at the positions `tagged` carry the tag `premier`. Returns their
/// addresses in file order.
async fn supporters(
    stack: &Stack,
    tenant: TenantId,
    count: usize,
    tagged: std::ops::Range<usize>,
) -> anyhow::Result<Vec<String>> {
    let mut csv = String::from("Email Address,First Name,Last Name,OPTIN_TIME,CONFIRM_TIME,TAGS\n");
    let mut emails = Vec::with_capacity(count);
    for i in 0..count {
        let email = format!("militant{i:03}@example.org");
        let tags = if tagged.contains(&i) {
            "\"\"\"premier\"\"\""
        } else {
            ""
        };
        csv.push_str(&format!(
            "{email},Prénom{i},Nom{i},2024-03-01 10:00:00,2024-03-01 10:05:00,{tags}\n"
        ));
        emails.push(email);
    }
    let path = std::env::temp_dir().join(format!("muster-faults-{tenant}.csv"));
    std::fs::write(&path, csv)?;
    let job = stack
        .import(tenant, &path, contacts::ImportPreset::MailchimpSubscribed)
        .await;
    std::fs::remove_file(&path)?;
    let job = job?;
    assert_eq!(
        job.state,
        contacts::ImportState::Succeeded as i32,
        "{job:?}"
    );
    Ok(emails)
}

/// `(state, attempts, error)` of the delivery of `campaign` to `email`.
async fn delivery_to(
    stack: &Stack,
    campaign: &str,
    email: &str,
) -> anyhow::Result<(String, i32, String)> {
    Ok(sqlx::query_as(
        "SELECT state, attempts, COALESCE(error, '') FROM deliveries
         WHERE campaign_id = $1::uuid AND lower(email) = $2",
    )
    .bind(campaign)
    .bind(email)
    .fetch_one(&stack.messaging_pool)
    .await?)
}

/// Asserts that the peer accepted exactly one message for each of
/// `expected`, and none for anybody else.
fn received_once_each(peer: &FaultSmtp, expected: &[&String]) {
    let received = peer.received_by_recipient();
    let twice: Vec<_> = received.iter().filter(|(_, m)| m.len() != 1).collect();
    assert!(
        twice.is_empty(),
        "received more than once: {:?}",
        twice.len()
    );
    let mut got: Vec<&String> = received.keys().collect();
    got.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_recipient_refused_at_rcpt_fails_with_the_server_reason_and_the_rest_go_once()
-> anyhow::Result<()> {
    let peer = FaultSmtp::start().await?;
    let stack = Stack::start_with_smtp(peer.port()).await?;
    let tenant = TenantId::new();
    let emails = supporters(&stack, tenant, 200, 0..0).await?;
    let gone = &emails[117];
    peer.refuse(gone, 550, "5.1.1 no such user");

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;

    assert_eq!(
        (counts(&done).sent, counts(&done).failed),
        (199, 1),
        "{done:?}"
    );
    let (state, attempts, error) = delivery_to(&stack, &campaign.id, gone).await?;
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    assert!(
        error.starts_with("refused by the SMTP server")
            && error.contains("550")
            && error.contains("5.1.1 no such user"),
        "{error}"
    );
    let answers = peer.answers_to(gone);
    assert_eq!(
        answers.len(),
        1,
        "refused recipient asked again: {answers:?}"
    );
    assert_eq!(
        (answers[0].stage, answers[0].code),
        (Stage::Rcpt, Some(550))
    );
    let others: Vec<&String> = emails.iter().filter(|e| *e != gone).collect();
    received_once_each(&peer, &others);
    stack.stop().await
}

#[tokio::test]
async fn a_recipient_deferred_twice_is_received_once_and_delays_nobody_else() -> anyhow::Result<()>
{
    let peer = FaultSmtp::start().await?;
    let stack = Stack::start_with_smtp(peer.port()).await?;
    let tenant = TenantId::new();
    let emails = supporters(&stack, tenant, 80, 0..0).await?;
    let busy = &emails[3];
    peer.defer(busy, 451, 2);

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;

    assert_eq!(counts(&done).sent, 80, "{done:?}");
    let (state, attempts, _) = delivery_to(&stack, &campaign.id, busy).await?;
    assert_eq!((state.as_str(), attempts), ("sent", 3));
    let answers = peer.answers_to(busy);
    let steps: Vec<_> = answers.iter().map(|a| (a.stage, a.code)).collect();
    assert_eq!(
        steps,
        [
            (Stage::Rcpt, Some(451)),
            (Stage::Rcpt, Some(451)),
            (Stage::Rcpt, Some(250)),
            (Stage::Data, Some(250)),
        ]
    );
    // The retries wait out the back-off ladder (5 s, then 30 s), as the
    // broker's clock counts the message's time to live: one run saw the
    // first retry reach the peer 28 ms short of 5 s by the peer's clock.
    let ladder = muster_runtime::bus::EMAIL_SEND_RETRY_DELAYS;
    let clocks = Duration::from_millis(100);
    let first_wait = answers[1].at.duration_since(answers[0].at)?;
    let second_wait = answers[2].at.duration_since(answers[1].at)?;
    assert!(
        first_wait + clocks >= ladder[0],
        "first retry after {first_wait:?}"
    );
    assert!(
        second_wait + clocks >= ladder[1],
        "second retry after {second_wait:?}"
    );

    let first_retry = answers[1].at;
    let late: Vec<_> = peer
        .log()
        .into_iter()
        .filter(|a| a.recipient != *busy && a.stage == Stage::Data && a.at > first_retry)
        .map(|a| a.recipient)
        .collect();
    assert!(
        late.is_empty(),
        "waited for the deferred recipient: {late:?}"
    );
    let all: Vec<&String> = emails.iter().collect();
    received_once_each(&peer, &all);
    stack.stop().await
}

#[tokio::test]
async fn a_recipient_whose_session_drops_after_data_is_unknown_not_resent() -> anyhow::Result<()> {
    let peer = FaultSmtp::start().await?;
    let stack = Stack::start_with_smtp(peer.port()).await?;
    let tenant = TenantId::new();
    let emails = supporters(&stack, tenant, 30, 0..0).await?;
    let lost = &emails[10];
    peer.drop_after_data(lost);

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;

    assert_eq!(
        (counts(&done).sent, counts(&done).unknown),
        (29, 1),
        "{done:?}"
    );
    let (state, attempts, error) = delivery_to(&stack, &campaign.id, lost).await?;
    assert_eq!((state.as_str(), attempts), ("unknown", 1));
    assert!(error.contains("not sent again"), "{error}");
    let data: Vec<_> = peer
        .answers_to(lost)
        .into_iter()
        .filter(|a| a.stage == Stage::Data)
        .collect();
    assert_eq!(data.len(), 1, "sent again: {data:?}");
    assert_eq!(data[0].code, None);
    let others: Vec<&String> = emails.iter().filter(|e| *e != lost).collect();
    received_once_each(&peer, &others);
    stack.stop().await
}

/// A gateway in front of the stack, for the public unsubscribe links.
async fn gateway(
    stack: &Stack,
    shutdown: &CancellationToken,
) -> anyhow::Result<(String, DatabaseSettings)> {
    let started = stack.start_gateway(shutdown, |_| {}).await?;
    Ok((started.base, started.database))
}

/// The token of the `List-Unsubscribe` link in a received message.
fn unsubscribe_token(raw: &str) -> Option<String> {
    let headers = raw.split("\r\n\r\n").next()?;
    let unfolded = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
    let value = unfolded.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("list-unsubscribe")
            .then_some(value)
    })?;
    let (_, token) = value.split_once("/u/")?;
    Some(token.split('>').next()?.trim().to_owned())
}

#[tokio::test]
async fn an_unsubscribe_during_a_campaign_stops_mail_to_that_recipient_once_committed()
-> anyhow::Result<()> {
    let peer = FaultSmtp::start().await?;
    let stack = Stack::start_with_smtp(peer.port()).await?;
    let shutdown = CancellationToken::new();
    let (base, gateway_database) = gateway(&stack, &shutdown).await?;
    let tenant = TenantId::new();
    let emails = supporters(&stack, tenant, 60, 50..60).await?;
    let mut client = stack.messaging(tenant).await?;
    client.set_rate_limit(tenant_limit(10)).await?;
    // An earlier campaign gave those tagged `premier` their unsubscribe links.
    let earlier = contacts::SegmentFilter {
        tags_any: vec!["premier".into()],
        ..Default::default()
    };
    let earlier = stack.launch_campaign(tenant, earlier).await?;
    stack.wait_completed(tenant, &earlier.id).await?;
    let links: HashMap<String, String> = peer
        .received_by_recipient()
        .into_iter()
        .map(|(email, messages)| {
            let token = unsubscribe_token(&messages[0].raw).expect("a List-Unsubscribe link");
            (email, token)
        })
        .collect();
    assert_eq!(links.len(), 10);

    let campaign = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    stack
        .wait_campaign(tenant, &campaign.id, |c| counts(c).sent >= 1)
        .await?;
    // The `premier` recipient this campaign reaches last (one job, in id order).
    let (leaver, state): (String, String) = sqlx::query_as(
        "SELECT lower(email), state FROM deliveries
         WHERE campaign_id = $1::uuid AND lower(email) = ANY ($2)
         ORDER BY id DESC LIMIT 1",
    )
    .bind(&campaign.id)
    .bind(links.keys().cloned().collect::<Vec<_>>())
    .fetch_one(&stack.messaging_pool)
    .await?;
    assert_eq!(
        state, "queued",
        "{leaver} was reached before the test could unsubscribe"
    );
    let response = reqwest::Client::new()
        .post(format!("{base}/u/{}", links[&leaver]))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    // Its transaction's start: no later than the moment it committed.
    let committed: i64 = sqlx::query_scalar(
        "SELECT (extract(epoch FROM created_at) * 1000000)::bigint FROM suppressions
         WHERE tenant_id = $1 AND email_key = $2 AND reason = 'unsubscribed'",
    )
    .bind(tenant)
    .bind(&leaver)
    .fetch_one(&stack.messaging_pool)
    .await?;
    let committed = UNIX_EPOCH + Duration::from_micros(committed as u64);

    let done = stack.wait_completed(tenant, &campaign.id).await?;
    assert_eq!(
        (counts(&done).sent, counts(&done).suppressed),
        (59, 1),
        "{done:?}"
    );
    let (state, _, error) = delivery_to(&stack, &campaign.id, &leaver).await?;
    assert_eq!(
        (state.as_str(), error.as_str()),
        ("suppressed", "suppressed at send time")
    );
    let to_leaver = peer.answers_to(&leaver);
    assert!(
        to_leaver.iter().all(|a| a.at < committed),
        "mail went to {leaver} after the unsubscribe committed: {to_leaver:?}"
    );
    assert_eq!(
        peer.received_by_recipient()[&leaver].len(),
        1,
        "only the earlier one"
    );
    let sent_after = peer
        .log()
        .iter()
        .filter(|a| a.stage == Stage::Data && a.at > committed)
        .count();
    assert!(
        sent_after >= 10,
        "the campaign was over before the unsubscribe ({sent_after})"
    );
    for email in emails.iter().filter(|e| **e != leaver) {
        let expected = if links.contains_key(email) { 2 } else { 1 };
        assert_eq!(
            peer.received_by_recipient()[email].len(),
            expected,
            "{email}"
        );
    }

    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    muster_testkit::drop_database(&gateway_database).await?;
    stack.stop().await
}

fn tenant_limit(per_second: u32) -> messaging::SetRateLimitRequest {
    messaging::SetRateLimitRequest {
        rate_limit: Some(messaging::RateLimit {
            scope: messaging::RateLimitScope::Tenant as i32,
            per_second,
            ..Default::default()
        }),
    }
}
