//! Sending rate limits hold across every sender process: three senders
//! together never send more than a tenant's limit plus its burst in any
//! second; a changed limit applies within seconds; while the limiter's Redis
//! cannot be reached senders send nothing and lose nothing, then resume.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use muster_e2e::windows::{most_in_window, per_second_ceiling, received_at, sent_at};
use muster_e2e::{Stack, data_file};
use muster_messaging::Mode;
use muster_proto::contacts::v1 as contacts;
use muster_proto::messaging::v1 as messaging;
use muster_runtime::TenantId;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A sender process: its task and its stop token.
type SenderProcess = (JoinHandle<anyhow::Result<()>>, CancellationToken);

/// Starts a relay and `senders` sender processes beside a serving stack;
/// the relay comes first.
async fn senders(stack: &Stack, senders: usize) -> anyhow::Result<Vec<SenderProcess>> {
    let mut processes = vec![stack.spawn_messaging(Mode::Relay).await?];
    for _ in 0..senders {
        processes.push(stack.spawn_messaging(Mode::Worker).await?);
    }
    Ok(processes)
}

/// Stops `processes`, draining, then the stack.
async fn stop(stack: Stack, processes: Vec<SenderProcess>) -> anyhow::Result<()> {
    for (task, stop) in processes {
        stop.cancel();
        task.await??;
    }
    stack.stop().await
}

/// The young supporters who agreed to e-mail: a few hundred people.
fn young() -> contacts::SegmentFilter {
    contacts::SegmentFilter {
        tags_any: vec!["jeunes".into()],
        ..Default::default()
    }
}

/// Imports the Mailchimp export; returns who the `young()` segment reaches.
async fn young_audience(stack: &Stack, tenant: TenantId) -> anyhow::Result<HashSet<String>> {
    let path = data_file("mailchimp-audience-subscribed.csv");
    stack
        .import(tenant, &path, contacts::ImportPreset::MailchimpSubscribed)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT email_key FROM people
         WHERE tenant_id = $1 AND email_consent = 'granted' AND 'jeunes' = ANY (tags)",
    )
    .bind(tenant)
    .fetch_all(&stack.contacts_pool)
    .await?
    .into_iter()
    .collect())
}

fn tenant_limit(per_second: u32, burst: u32) -> messaging::SetRateLimitRequest {
    messaging::SetRateLimitRequest {
        rate_limit: Some(messaging::RateLimit {
            scope: messaging::RateLimitScope::Tenant as i32,
            per_second,
            burst,
            ..Default::default()
        }),
    }
}

/// Asserts that each of `expected` received exactly one message and nobody else any.
fn received_once_each(stack: &Stack, expected: &HashSet<String>) -> anyhow::Result<()> {
    let received = stack.received_by_recipient()?;
    let doubled: Vec<_> = received.iter().filter(|(_, m)| m.len() > 1).collect();
    assert!(doubled.is_empty(), "received twice: {:?}", doubled.len());
    let recipients: HashSet<String> = received.into_keys().collect();
    assert_eq!(&recipients, expected);
    Ok(())
}

fn counts(campaign: &messaging::Campaign) -> messaging::DeliveryCounts {
    campaign.counts.unwrap_or_default()
}

#[tokio::test]
async fn three_senders_together_never_exceed_the_tenant_limit_plus_burst_in_any_second()
-> anyhow::Result<()> {
    let stack = Stack::start_with(Mode::Serve).await?;
    let processes = senders(&stack, 3).await?;
    let tenant = TenantId::new();
    let expected = young_audience(&stack, tenant).await?;
    let (limit, burst) = (40, 10);
    let mut client = stack.messaging(tenant).await?;
    client.set_rate_limit(tenant_limit(limit, burst)).await?;

    let campaign = stack.launch_campaign(tenant, young()).await?;
    let done = stack.wait_completed(tenant, &campaign.id).await?;

    assert_eq!(counts(&done).sent as usize, expected.len());
    received_once_each(&stack, &expected)?;
    let received = received_at(stack.sink.dir())?;
    let recorded = sent_at(&stack.messaging_pool, &campaign.id).await?;
    let (most_received, _) = most_in_window(&received, Duration::from_secs(1));
    let (most_recorded, _) = most_in_window(&recorded, Duration::from_secs(1));
    eprintln!(
        "{} messages; most in one second: {most_received} received, {most_recorded} recorded \
         sent (limit {limit} + burst {burst})",
        received.len()
    );
    let ceiling = (limit + burst) as usize;
    assert!(
        most_received <= per_second_ceiling(limit, burst),
        "{most_received} received in one second"
    );
    assert!(
        most_recorded <= per_second_ceiling(limit, burst),
        "{most_recorded} recorded sent in one second"
    );
    assert!(
        most_received >= limit as usize * 3 / 4,
        "only {most_received} in the busiest second: the senders held back"
    );
    let span = received.iter().max().unwrap() - received.iter().min().unwrap();
    let fastest = received.len().saturating_sub(ceiling) as i64 * 1_000_000 / i64::from(limit);
    assert!(span >= fastest, "{} messages in {span} µs", received.len());
    stop(stack, processes).await
}

#[tokio::test]
async fn a_limit_changed_during_a_campaign_applies_within_seconds() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let expected = young_audience(&stack, tenant).await?;
    let mut client = stack.messaging(tenant).await?;
    client.set_rate_limit(tenant_limit(10, 0)).await?;

    let campaign = stack.launch_campaign(tenant, young()).await?;
    stack
        .wait_campaign(tenant, &campaign.id, |c| counts(c).sent >= 1)
        .await?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let slow = counts(&stack.wait_campaign(tenant, &campaign.id, |_| true).await?).sent;
    let allowed = 10 * started.elapsed().as_secs_f64().ceil() as u64 + 1;
    assert!(slow <= allowed, "{slow} sent under a limit of 10/s");

    let removed = client
        .set_rate_limit(tenant_limit(0, 0))
        .await?
        .into_inner();
    assert_eq!(removed.per_second, 0);
    let changed = Instant::now();
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    let left = expected.len() as u64 - slow;
    assert!(
        changed.elapsed() < Duration::from_secs(left / 10 / 2),
        "{left} messages took {:?} after the limit was lifted",
        changed.elapsed()
    );
    assert_eq!(counts(&done).sent as usize, expected.len());
    received_once_each(&stack, &expected)?;
    stack.stop().await
}

#[tokio::test]
async fn only_an_operator_sets_provider_limits_and_callers_list_their_own() -> anyhow::Result<()> {
    let stack = Stack::start_with(Mode::Serve).await?;
    let tenant = TenantId::new();
    let mut organization = stack.messaging(tenant).await?;
    let mut operator = stack.messaging_as_service().await?;
    let provider = |key: &str| messaging::SetRateLimitRequest {
        rate_limit: Some(messaging::RateLimit {
            scope: messaging::RateLimitScope::Provider as i32,
            key: key.into(),
            per_hour: 10_000,
            burst: 100,
            ..Default::default()
        }),
    };

    let refused = organization
        .set_rate_limit(provider("smtp.example.net"))
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    let refused = operator.set_rate_limit(tenant_limit(5, 0)).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    let unnamed = operator.set_rate_limit(provider(" ")).await;
    assert_eq!(unnamed.unwrap_err().code(), tonic::Code::InvalidArgument);

    operator
        .set_rate_limit(provider("SMTP.example.net"))
        .await?;
    let changed = operator
        .set_rate_limit(provider("smtp.example.net"))
        .await?
        .into_inner();
    assert_eq!(changed.key, "smtp.example.net");
    organization.set_rate_limit(tenant_limit(5, 2)).await?;
    let sender = messaging::SetRateLimitRequest {
        rate_limit: Some(messaging::RateLimit {
            scope: messaging::RateLimitScope::Sender as i32,
            key: "Equipe@Example.org".into(),
            per_day: 1_000,
            ..Default::default()
        }),
    };
    organization.set_rate_limit(sender).await?;

    let request = messaging::ListRateLimitsRequest {};
    let own = organization.list_rate_limits(request).await?.into_inner();
    let keys: Vec<_> = own.rate_limits.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["equipe@example.org", ""]);
    let mut other = stack.messaging(TenantId::new()).await?;
    let none = other.list_rate_limits(request).await?.into_inner();
    assert!(none.rate_limits.is_empty(), "{none:?}");
    let operators = operator.list_rate_limits(request).await?.into_inner();
    assert_eq!(operators.rate_limits.len(), 1, "{operators:?}");
    assert_eq!(operators.rate_limits[0].per_hour, 10_000);
    stack.stop().await
}

/// A TCP proxy to the limiter's Redis that refuses every connection until
/// it is opened: a Redis that cannot be reached, then comes back.
struct Gate {
    port: u16,
    open: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Gate {
    async fn closed_in_front_of(redis: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let open = Arc::new(AtomicBool::new(false));
        let (redis, is_open) = (redis.to_owned(), open.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue;
                }
                let redis = redis.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(redis).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(Self { port, open, task })
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn senders_send_nothing_while_redis_is_unreachable_and_resume_when_it_returns()
-> anyhow::Result<()> {
    let mut stack = Stack::start_with(Mode::Serve).await?;
    let redis = stack.messaging_settings.ratelimit.redis_url.clone();
    let address = redis.trim_start_matches("redis://").trim_end_matches('/');
    let gate = Gate::closed_in_front_of(address).await?;
    stack.messaging_settings.ratelimit.redis_url = format!("redis://127.0.0.1:{}", gate.port);
    // Two jobs at a time each, so that both senders hold some.
    stack.messaging_settings.sender.concurrency = 2;
    let mut processes = senders(&stack, 2).await?;
    let tenant = TenantId::new();
    let expected = young_audience(&stack, tenant).await?;
    let mut client = stack.messaging(tenant).await?;
    client.set_rate_limit(tenant_limit(200, 20)).await?;

    let campaign = stack.launch_campaign(tenant, young()).await?;
    // Longer than a claim may stay unanswered (5 s in tests) before it is
    // taken for the claim of a dead sender: senders wait for their turn
    // before they claim, so nothing is claimed, nothing sent meanwhile.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let held = counts(&stack.wait_campaign(tenant, &campaign.id, |_| true).await?);
    assert_eq!(stack.sink.messages()?.len(), 0, "sent without the limiter");
    assert_eq!(held.sent, 0, "{held:?}");
    assert_eq!(
        held.sending, 0,
        "claimed while waiting for a turn: {held:?}"
    );
    assert_eq!(held.unknown, 0, "{held:?}");
    assert_eq!(held.queued as usize, expected.len(), "{held:?}");

    // A sender stopped meanwhile gives back what it holds, promptly.
    let (task, stopped) = processes.pop().expect("a sender");
    stopped.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await???;

    gate.open();
    let done = stack.wait_completed(tenant, &campaign.id).await?;
    let done = counts(&done);
    assert_eq!(done.sent as usize, expected.len(), "{done:?}");
    assert_eq!(done.unknown, 0, "{done:?}");
    received_once_each(&stack, &expected)?;
    stop(stack, processes).await
}
