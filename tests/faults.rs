//! Faults in the middle of a campaign: a sender process killed (SIGKILL)
//! and restarted again and again, four sender processes on one queue, and
//! private RabbitMQ, PostgreSQL and Redis servers restarted or flushed while
//! it sends. Whatever happens, each recipient receives the message once or
//! is reported failed or unknown with a reason; a second copy only ever
//! reaches someone reported unknown; nothing is left queued or sending.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use muster_e2e::windows::{most_in_window, per_second_ceiling, received_at, sent_at};
use muster_e2e::{Messaging, Stack};
use muster_messaging::Mode;
use muster_proto::contacts::v1 as contacts;
use muster_proto::messaging::v1 as messaging;
use muster_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use muster_runtime::TenantId;
use muster_runtime::auth::Bearer;
use muster_runtime::config::AmqpSettings;
use muster_testkit::servers::{PrivatePostgres, PrivateRabbit, PrivateRedis, Shutdown};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The messaging binary built with these tests.
const MESSAGING_BIN: &str = env!("CARGO_BIN_EXE_e2e-messaging");

/// Connections of each sender process started beside a stack: the shared
/// PostgreSQL serves every test running at once.
const SENDER_POOL: u32 = 4;

/// How long a campaign may take to settle once the faults are over.
const SETTLE: Duration = Duration::from_secs(60);

/// How long a sending campaign's counts may stay still: longer than a
/// restart and than a claim takes to be reported unknown (5 s in tests).
const STALL: Duration = Duration::from_secs(20);

/// A messaging process run from the real binary, so that it can be killed.
struct Process {
    name: String,
    mode: &'static str,
    env: Vec<(String, String)>,
    /// Bound at the end of start-up: when it accepts, the process is ready.
    admin_port: u16,
    grpc_port: Option<u16>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Starts `muster-messaging <mode>` configured as `settings` says.
    async fn start(
        name: &str,
        mode: &'static str,
        settings: &muster_messaging::Settings,
    ) -> anyhow::Result<Self> {
        let admin_port = muster_testkit::free_port()?;
        let serves = matches!(mode, "serve" | "all");
        let grpc_port = match settings.listen.addr.rsplit_once(':') {
            Some((_, port)) if serves => Some(port.parse().context("listen.addr has a port")?),
            _ => None,
        };
        anyhow::ensure!(
            grpc_port != Some(0),
            "give a serving process a fixed port, not 0"
        );
        let log =
            std::env::temp_dir().join(format!("muster-{name}-{}.log", muster_testkit::unique()));
        let mut process = Self {
            name: name.to_owned(),
            mode,
            env: environment(settings, admin_port),
            admin_port,
            grpc_port,
            log,
            child: None,
        };
        process.spawn().await?;
        Ok(process)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(MESSAGING_BIN)
            .arg(self.mode)
            .env_remove("MUSTER_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {MESSAGING_BIN}"))?;
        self.child = Some(child);
        let ports = [Some(self.admin_port), self.grpc_port];
        for port in ports.into_iter().flatten() {
            if let Err(error) = muster_testkit::wait_for_port(port, Duration::from_secs(30)).await {
                let exited = self.exited();
                return Err(error.context(format!(
                    "{} did not start ({exited:?}); its log ends with:\n{}",
                    self.name,
                    self.log_tail(20)
                )));
            }
        }
        Ok(())
    }

    /// Kills the process with SIGKILL: no draining, no goodbye.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Kills the process and starts it again with the same settings.
    async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        self.spawn().await
    }

    /// How the process ended, if it did.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Fails when the process is no longer running.
    fn still_running(&mut self) -> anyhow::Result<()> {
        match self.exited() {
            None if self.child.is_some() => Ok(()),
            status => anyhow::bail!(
                "{} stopped ({status:?}); its log ends with:\n{}",
                self.name,
                self.log_tail(30)
            ),
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Lines of its log containing `needle`.
    fn log_lines(&self, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Kills the process and removes its log (kept when a test fails early).
    async fn stop(mut self) {
        self.kill().await;
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `settings` as the `MUSTER_*` variables the binary reads.
fn environment(settings: &muster_messaging::Settings, admin_port: u16) -> Vec<(String, String)> {
    let values = [
        ("DATABASE__URL", settings.database.url.clone()),
        (
            "DATABASE__MAX_CONNECTIONS",
            settings.database.max_connections.to_string(),
        ),
        (
            "DATABASE__MIGRATE_ON_START",
            settings.database.migrate_on_start.to_string(),
        ),
        ("AMQP__URL", settings.amqp.url.clone()),
        ("AMQP__PREFIX", settings.amqp.prefix.clone()),
        ("AMQP__PREFETCH", settings.amqp.prefetch.to_string()),
        (
            "AMQP__DELIVERY_LIMIT",
            settings.amqp.delivery_limit.to_string(),
        ),
        ("LISTEN__ADDR", settings.listen.addr.clone()),
        ("LISTEN__ADMIN_ADDR", format!("127.0.0.1:{admin_port}")),
        (
            "SERVICES__CONTACTS_URL",
            settings.services.contacts_url.clone(),
        ),
        ("SMTP__HOST", settings.smtp.host.clone()),
        ("SMTP__PORT", settings.smtp.port.to_string()),
        (
            "SENDER__CONCURRENCY",
            settings.sender.concurrency.to_string(),
        ),
        (
            "SENDER__STALE_CLAIM_SECS",
            settings.sender.stale_claim_secs.to_string(),
        ),
        (
            "SENDER__STALL_AFTER_SECS",
            settings.sender.stall_after_secs.to_string(),
        ),
        ("RATELIMIT__REDIS_URL", settings.ratelimit.redis_url.clone()),
        ("RATELIMIT__PREFIX", settings.ratelimit.prefix.clone()),
        ("AUTH__TOKEN_SECRET", settings.auth.token_secret.clone()),
        ("PUBLIC__BASE_URL", settings.public.base_url.clone()),
        ("TELEMETRY__FORMAT", "json".to_owned()),
        ("TELEMETRY__FILTER", "info".to_owned()),
    ];
    values
        .into_iter()
        .map(|(key, value)| (format!("MUSTER_{key}"), value))
        .collect()
}

/// Imports `count` generated people who agreed to e-mail, tagged `tag`,
/// and returns their addresses.
async fn people(
    stack: &Stack,
    tenant: TenantId,
    count: usize,
    tag: &str,
) -> anyhow::Result<HashSet<String>> {
    let file = std::env::temp_dir().join(format!("faults-{}.csv", muster_testkit::unique()));
    let mut csv = String::from("email,first,city,tags,consent,consent_time\n");
    let mut addresses = HashSet::new();
    for n in 0..count {
        let email = format!("{tag}.{n:05}@example.org");
        csv.push_str(&format!(
            "{email},Camille{n},Lyon,{tag},oui,2026-01-01 10:00\n"
        ));
        addresses.insert(email);
    }
    std::fs::write(&file, csv)?;
    let mapping = contacts::ColumnMapping {
        email: "email".into(),
        first_name: "first".into(),
        city: "city".into(),
        tags: "tags".into(),
        email_consent: "consent".into(),
        email_consent_time: "consent_time".into(),
        ..Default::default()
    };
    let job = stack.import_custom(tenant, &file, mapping).await?;
    std::fs::remove_file(&file)?;
    let granted = job.counts.map(|c| c.consent_granted).unwrap_or(0);
    assert_eq!(granted as usize, count, "{job:?}");
    Ok(addresses)
}

fn tagged(tag: &str) -> contacts::SegmentFilter {
    contacts::SegmentFilter {
        tags_any: vec![tag.into()],
        ..Default::default()
    }
}

fn counts(campaign: &messaging::Campaign) -> messaging::DeliveryCounts {
    campaign.counts.unwrap_or_default()
}

/// Whether nothing of a launched campaign is left to claim.
fn drained(campaign: &messaging::Campaign) -> bool {
    let n = counts(campaign);
    n.total > 0 && n.queued == 0
}

/// A messaging client for `tenant` on the API at 127.0.0.1:`port`; it
/// reconnects by itself when that API comes back after an outage.
fn client_at(stack: &Stack, port: u16, tenant: TenantId) -> anyhow::Result<Messaging> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?.connect_lazy();
    let token = stack
        .signer
        .mint("test", Some(tenant), Duration::from_secs(3600));
    Ok(MessagingServiceClient::with_interceptor(
        channel,
        Bearer::new(&token),
    ))
}

/// Creates a template and a campaign to `segment` through `client`, and launches it.
async fn launch(
    client: &mut Messaging,
    segment: contacts::SegmentFilter,
) -> anyhow::Result<messaging::Campaign> {
    let template = client
        .create_template(messaging::CreateTemplateRequest {
            template: Some(messaging::Template {
                name: "Appel".into(),
                subject: "Rendez-vous à {{ city }}, {{ first_name }} !".into(),
                text_body: "Bonjour {{ first_name }},\nRejoignez-nous.\n".into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let campaign = client
        .create_campaign(messaging::CreateCampaignRequest {
            campaign: Some(messaging::Campaign {
                name: "Appel".into(),
                template_id: template.id,
                segment: Some(segment),
                from_name: "Muster".into(),
                from_email: "equipe@example.org".into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let request = messaging::CampaignActionRequest { id: campaign.id };
    Ok(client.launch_campaign(request).await?.into_inner())
}

/// Polls the campaign until `done` holds, riding through failed calls
/// (the API may be cut off from its database meanwhile); gives up after
/// `patience`, or once its counts have not moved for [`STALL`].
async fn wait_for(
    client: &mut Messaging,
    id: &str,
    patience: Duration,
    done: impl Fn(&messaging::Campaign) -> bool,
) -> anyhow::Result<messaging::Campaign> {
    let started = Instant::now();
    let mut moved = Instant::now();
    let mut last = None;
    let mut failure = None;
    while started.elapsed() < patience && moved.elapsed() < STALL {
        let request = messaging::GetCampaignRequest { id: id.into() };
        match client.get_campaign(request).await {
            Ok(campaign) => {
                let campaign = campaign.into_inner();
                if done(&campaign) {
                    return Ok(campaign);
                }
                if last != campaign.counts {
                    (last, moved) = (campaign.counts, Instant::now());
                }
            }
            Err(status) => failure = Some(status),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "campaign {id} not there after {:?}, its counts still for {:?}: {last:?}; \
         last error {failure:?}",
        started.elapsed(),
        moved.elapsed()
    )
}

/// Waits until the campaign is completed.
async fn wait_completed(client: &mut Messaging, id: &str) -> anyhow::Result<messaging::Campaign> {
    wait_for(client, id, SETTLE, |c| {
        c.state == messaging::CampaignState::Completed as i32
    })
    .await
}

/// Send jobs the broker dead-lettered: work that no sender will ever do.
async fn dead_send_jobs(amqp: &AmqpSettings) -> anyhow::Result<u32> {
    use lapin::options::QueueDeclareOptions;
    let bus = muster_runtime::bus::Bus::connect(amqp, "test-inspect").await?;
    let channel = bus.channel().await?;
    let dead = bus.name("messaging.email.send.dead");
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare(dead.as_str().into(), options, Default::default())
        .await?;
    bus.close().await;
    Ok(queue.message_count())
}

/// Received copies per recipient (lowercased), from the SMTP sink.
fn received(stack: &Stack) -> anyhow::Result<HashMap<String, usize>> {
    Ok(stack
        .received_by_recipient()?
        .into_iter()
        .map(|(recipient, messages)| (recipient, messages.len()))
        .collect())
}

/// How a campaign's deliveries ended.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    failed: usize,
    unknown: usize,
    /// Recipients who received two copies or more.
    doubled: usize,
}

impl Tally {
    fn exactly_once(&self, audience: usize) -> bool {
        self.sent == audience && self.failed + self.unknown + self.doubled == 0
    }
}

/// Asserts that `campaign` settled with each of `audience` sent and
/// received once, or failed or unknown with a reason, and a second copy
/// only to someone reported unknown; returns the tally.
async fn assert_settled(
    pool: &PgPool,
    campaign: &messaging::Campaign,
    audience: &HashSet<String>,
    received: &HashMap<String, usize>,
) -> anyhow::Result<Tally> {
    let n = counts(campaign);
    assert_eq!(
        campaign.state,
        messaging::CampaignState::Completed as i32,
        "{n:?}"
    );
    assert_eq!(
        (n.queued, n.sending),
        (0, 0),
        "left queued or sending: {n:?}"
    );
    assert_eq!(n.total as usize, audience.len(), "{n:?}");

    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT lower(email), state, COALESCE(error, '') FROM deliveries
         WHERE campaign_id = $1::uuid",
    )
    .bind(&campaign.id)
    .fetch_all(pool)
    .await?;
    let mut tally = Tally::default();
    let mut seen = HashSet::new();
    for (email, state, error) in rows {
        assert!(
            audience.contains(&email),
            "a delivery to {email}, outside the audience"
        );
        assert!(seen.insert(email.clone()), "two deliveries to {email}");
        let copies = received.get(&email).copied().unwrap_or(0);
        match state.as_str() {
            "sent" => {
                tally.sent += 1;
                assert_eq!(
                    copies, 1,
                    "{email} is recorded sent and received {copies} copies"
                );
            }
            "failed" | "unknown" => {
                assert!(!error.is_empty(), "{email} is {state} without a reason");
                assert!(
                    copies <= 1 || state == "unknown",
                    "{email} is {state} and received {copies} copies"
                );
                match state.as_str() {
                    "failed" => tally.failed += 1,
                    _ => tally.unknown += 1,
                }
            }
            other => panic!("{email} ended {other}: {error}"),
        }
        if copies > 1 {
            tally.doubled += 1;
        }
    }
    assert_eq!(seen.len(), audience.len(), "recipients without a delivery");
    assert!(
        tally.doubled <= tally.unknown,
        "{} received twice, {} reported unknown",
        tally.doubled,
        tally.unknown
    );
    assert_eq!(
        (tally.sent, tally.failed, tally.unknown),
        (n.sent as usize, n.failed as usize, n.unknown as usize),
        "the campaign's counts disagree with its deliveries"
    );
    Ok(tally)
}

/// Stops an in-process relay, draining.
async fn stop_relay(
    (task, stop): (JoinHandle<anyhow::Result<()>>, CancellationToken),
) -> anyhow::Result<()> {
    stop.cancel();
    task.await?
}

/// Asserts that nobody outside `audience` received anything.
fn assert_nobody_else(received: &HashMap<String, usize>, audience: &HashSet<String>) {
    let strangers: Vec<_> = received.keys().filter(|r| !audience.contains(*r)).collect();
    assert!(
        strangers.is_empty(),
        "received outside the audience: {strangers:?}"
    );
}

#[tokio::test]
async fn a_sender_killed_again_and_again_never_sends_twice_and_leaves_nothing_stuck()
-> anyhow::Result<()> {
    let stack = Stack::start_with(Mode::Serve).await?;
    let relay = stack.spawn_messaging(Mode::Relay).await?;
    let tenant = TenantId::new();
    let audience = people(&stack, tenant, 1500, "crash").await?;
    let mut sender = Process::start("sender", "worker", &stack.messaging_settings).await?;
    let mut client = stack.messaging(tenant).await?;

    let campaign = stack.launch_campaign(tenant, tagged("crash")).await?;
    let mut kills = Vec::new();
    for _ in 0..4 {
        // Once the (restarted) sender has sent some, kill it at a random moment.
        let now = counts(&wait_for(&mut client, &campaign.id, SETTLE, |_| true).await?);
        let progress = now.sent + rand::random_range(20..120);
        let sending = wait_for(&mut client, &campaign.id, SETTLE, |c| {
            counts(c).sent >= progress || drained(c)
        })
        .await?;
        if drained(&sending) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..300))).await;
        sender.kill().await;
        kills.push(counts(
            &wait_for(&mut client, &campaign.id, SETTLE, |_| true).await?,
        ));
        sender.restart().await?;
    }
    eprintln!("killed at: {kills:#?}");
    assert!(
        kills.len() >= 3,
        "the campaign ended after {} kills",
        kills.len()
    );
    // Each kill left work behind: deliveries waiting, or claimed by the
    // killed sender and to be taken back (the last kill may find none
    // waiting when the sender was quicker than the random moment).
    assert!(kills.iter().all(|k| k.queued + k.sending > 0), "{kills:?}");

    let done = match wait_completed(&mut client, &campaign.id).await {
        Ok(done) => done,
        Err(error) => {
            let dead = dead_send_jobs(&stack.messaging_settings.amqp).await?;
            let doubled = received(&stack)?.values().filter(|n| **n > 1).count();
            return Err(error.context(format!(
                "after {} kills: {dead} send jobs dead-lettered, {doubled} recipients received \
                 two copies; the sender's log ends with:\n{}",
                kills.len(),
                sender.log_tail(6)
            )));
        }
    };
    let copies = received(&stack)?;
    let tally = assert_settled(&stack.messaging_pool, &done, &audience, &copies).await?;
    assert_nobody_else(&copies, &audience);
    eprintln!("{tally:?} after {} kills", kills.len());
    sender.stop().await;
    stop_relay(relay).await?;
    stack.stop().await
}

#[tokio::test]
async fn send_jobs_lost_to_the_broker_are_enqueued_again_and_sent_once() -> anyhow::Result<()> {
    let stack = Stack::start_with(Mode::Serve).await?;
    let relay = stack.spawn_messaging(Mode::Relay).await?;
    let tenant = TenantId::new();
    let audience = people(&stack, tenant, 450, "perdu").await?;
    let mut client = stack.messaging(tenant).await?;

    // No sender yet: the launch's jobs reach the queue, then are lost.
    let campaign = stack.launch_campaign(tenant, tagged("perdu")).await?;
    let purged = purge_send_queue(&stack.messaging_settings.amqp, 5).await?;
    assert_eq!(purged, 5, "450 deliveries make 5 jobs of 100");
    let (worker, stop_worker) = stack.spawn_messaging(Mode::Worker).await?;

    // The campaign stalls, then is noticed (10 s in tests) and sent.
    let done = wait_completed(&mut client, &campaign.id).await?;
    let copies = received(&stack)?;
    let tally = assert_settled(&stack.messaging_pool, &done, &audience, &copies).await?;
    assert_nobody_else(&copies, &audience);
    assert!(tally.exactly_once(audience.len()), "{tally:?}");
    stop_worker.cancel();
    worker.await??;
    stop_relay(relay).await?;
    stack.stop().await
}

#[tokio::test]
async fn poison_send_jobs_are_dead_lettered_and_the_campaign_goes_on() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let tenant = TenantId::new();
    let audience = people(&stack, tenant, 450, "poison").await?;
    let mut client = stack.messaging(tenant).await?;

    // Ahead of the campaign's own jobs: a body that is no send job, and a
    // job for a campaign that does not exist.
    let unknown = muster_proto::events::v1::SendJob {
        campaign_id: uuid::Uuid::now_v7().to_string(),
        delivery_ids: vec![uuid::Uuid::now_v7().to_string()],
    };
    let amqp = &stack.messaging_settings.amqp;
    publish_send_job(amqp, tenant, b"\xff\x00 not a protobuf".to_vec()).await?;
    publish_send_job(amqp, tenant, prost::Message::encode_to_vec(&unknown)).await?;
    let campaign = stack.launch_campaign(tenant, tagged("poison")).await?;

    let done = wait_completed(&mut client, &campaign.id).await?;
    let copies = received(&stack)?;
    let tally = assert_settled(&stack.messaging_pool, &done, &audience, &copies).await?;
    assert!(tally.exactly_once(audience.len()), "{tally:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while dead_send_jobs(amqp).await? < 2 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the poison jobs never reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(dead_send_jobs(amqp).await?, 2);
    stack.stop().await
}

/// Publishes `body` on the send queue as the outbox would.
async fn publish_send_job(
    amqp: &AmqpSettings,
    tenant: TenantId,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    use lapin::types::FieldTable;
    let bus = muster_runtime::bus::Bus::connect(amqp, "test-poison").await?;
    let channel = bus.confirm_channel().await?;
    let mut headers = FieldTable::default();
    headers.insert(
        "tenant_id".into(),
        muster_runtime::bus::header_value(&tenant.to_string()),
    );
    let properties = BasicProperties::default()
        .with_message_id(uuid::Uuid::now_v7().to_string().into())
        .with_headers(headers);
    let queue = bus.name("messaging.email.send");
    channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            properties,
        )
        .await?
        .await?;
    bus.close().await;
    Ok(())
}

/// Waits until `jobs` send jobs are on the send queue and purges it.
async fn purge_send_queue(amqp: &AmqpSettings, jobs: u32) -> anyhow::Result<u32> {
    use lapin::options::{QueueDeclareOptions, QueuePurgeOptions};
    let bus = muster_runtime::bus::Bus::connect(amqp, "test-purge").await?;
    let channel = bus.channel().await?;
    let queue = bus.name("messaging.email.send");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let declared = channel
            .queue_declare(queue.as_str().into(), passive, Default::default())
            .await?;
        if declared.message_count() >= jobs {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} send jobs reached the queue",
            declared.message_count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let purged = channel
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await?;
    bus.close().await;
    Ok(purged)
}

#[tokio::test]
async fn four_sender_processes_on_one_queue_send_each_message_exactly_once() -> anyhow::Result<()> {
    let stack = Stack::start_with(Mode::Serve).await?;
    let relay = stack.spawn_messaging(Mode::Relay).await?;
    let tenant = TenantId::new();
    let audience = people(&stack, tenant, 1500, "quatre").await?;
    let mut settings = stack.messaging_settings.clone();
    settings.database.max_connections = SENDER_POOL;
    // Few jobs each at a time, so that all four take a share.
    settings.sender.concurrency = 2;
    let mut senders = Vec::new();
    for n in 0..4 {
        senders.push(Process::start(&format!("sender{n}"), "worker", &settings).await?);
    }
    let mut client = stack.messaging(tenant).await?;

    let campaign = stack.launch_campaign(tenant, tagged("quatre")).await?;
    let done = wait_completed(&mut client, &campaign.id).await?;
    let copies = received(&stack)?;
    let tally = assert_settled(&stack.messaging_pool, &done, &audience, &copies).await?;
    assert_nobody_else(&copies, &audience);
    assert!(tally.exactly_once(audience.len()), "{tally:?}");
    for sender in &mut senders {
        sender.still_running()?;
    }
    for sender in senders {
        sender.stop().await;
    }
    stop_relay(relay).await?;
    stack.stop().await
}

#[tokio::test]
async fn senders_and_relay_ride_through_a_rabbitmq_restart_and_send_exactly_once()
-> anyhow::Result<()> {
    let (stack, mut rabbit) =
        tokio::try_join!(Stack::start_with(Mode::Serve), PrivateRabbit::start())?;
    let tenant = TenantId::new();
    let before = people(&stack, tenant, 1000, "avant").await?;
    let after = people(&stack, tenant, 300, "apres").await?;
    let mut settings = stack.messaging_settings.clone();
    settings.amqp = rabbit.amqp();
    settings.database.max_connections = SENDER_POOL;
    // Two jobs in hand at a time: the rest waits in the broker's queue.
    settings.sender.concurrency = 2;
    let mut relay = Process::start("relay", "relay", &settings).await?;
    let mut sender = Process::start("sender", "worker", &settings).await?;
    let mut client = stack.messaging(tenant).await?;
    // Paced, so that the restart comes in the middle of the campaign.
    let rate = messaging::RateLimit {
        scope: messaging::RateLimitScope::Tenant as i32,
        per_second: 150,
        burst: 10,
        ..Default::default()
    };
    let request = messaging::SetRateLimitRequest {
        rate_limit: Some(rate),
    };
    client.set_rate_limit(request).await?;

    let first = stack.launch_campaign(tenant, tagged("avant")).await?;
    wait_for(&mut client, &first.id, SETTLE, |c| counts(c).sent >= 150).await?;
    rabbit.restart().await?;
    let at_restart = counts(&wait_for(&mut client, &first.id, SETTLE, |_| true).await?);
    assert!(
        at_restart.queued > 0,
        "the campaign ended before the restart: {at_restart:?}"
    );
    // Published by the relay after the restart, consumed by the sender.
    let second = stack.launch_campaign(tenant, tagged("apres")).await?;

    let mut done = Vec::new();
    for campaign in [&first, &second] {
        match wait_completed(&mut client, &campaign.id).await {
            Ok(campaign) => done.push(campaign),
            Err(error) => {
                return Err(error.context(format!(
                    "after the broker restart; the sender's log:\n{}\nthe relay's log:\n{}",
                    sender.log_lines("WARN").join("\n"),
                    relay.log_lines("WARN").join("\n")
                )));
            }
        }
    }
    let copies = received(&stack)?;
    let everyone: HashSet<String> = before.union(&after).cloned().collect();
    assert_nobody_else(&copies, &everyone);
    for (campaign, audience) in done.iter().zip([&before, &after]) {
        let tally = assert_settled(&stack.messaging_pool, campaign, audience, &copies).await?;
        assert!(tally.exactly_once(audience.len()), "{tally:?}");
    }
    eprintln!(
        "the sender's warnings:\n{}\nthe relay's warnings:\n{}",
        sender.log_lines("WARN").join("\n"),
        relay.log_lines("WARN").join("\n")
    );
    relay.still_running()?;
    sender.still_running()?;
    relay.stop().await;
    sender.stop().await;
    stack.stop().await
}

#[tokio::test]
async fn messaging_rides_through_a_postgresql_restart_and_crash_mid_campaign() -> anyhow::Result<()>
{
    let (stack, mut postgres) =
        tokio::try_join!(Stack::start_with(Mode::Serve), PrivatePostgres::start())?;
    let tenant = TenantId::new();
    let audience = people(&stack, tenant, 1500, "base").await?;
    let mut settings = stack.messaging_settings.clone();
    settings.database = postgres.database("messaging").await?;
    let api_port = muster_testkit::free_port()?;
    settings.listen.addr = format!("127.0.0.1:{api_port}");
    settings.sender.concurrency = 4;
    let mut processes = vec![Process::start("api", "serve", &settings).await?];
    settings.database.migrate_on_start = false;
    processes.push(Process::start("relay", "relay", &settings).await?);
    processes.push(Process::start("sender", "worker", &settings).await?);
    let mut client = client_at(&stack, api_port, tenant)?;

    let campaign = launch(&mut client, tagged("base")).await?;
    let mut faults = Vec::new();
    for (sent, how) in [(200, Shutdown::Fast), (700, Shutdown::Immediate)] {
        wait_for(&mut client, &campaign.id, SETTLE, |c| {
            counts(c).sent >= sent
        })
        .await?;
        postgres.restart(how).await?;
        faults.push(counts(
            &wait_for(&mut client, &campaign.id, SETTLE, |_| true).await?,
        ));
    }
    eprintln!("after each restart: {faults:#?}");
    assert!(
        faults.iter().all(|f| f.queued > 0),
        "the campaign ended too soon: {faults:?}"
    );

    let done = match wait_completed(&mut client, &campaign.id).await {
        Ok(done) => done,
        Err(error) => {
            let dead = dead_send_jobs(&settings.amqp).await?;
            let logs: Vec<String> = processes
                .iter()
                .map(|p| format!("{}:\n{}", p.name, p.log_lines("WARN").join("\n")))
                .collect();
            return Err(error.context(format!(
                "{dead} send jobs dead-lettered; warnings:\n{}",
                logs.join("\n")
            )));
        }
    };
    let pool = PgPool::connect(&settings.database.url).await?;
    let copies = received(&stack)?;
    let tally = assert_settled(&pool, &done, &audience, &copies).await?;
    assert_nobody_else(&copies, &audience);
    eprintln!("{tally:?}");
    for process in &mut processes {
        process.still_running()?;
    }
    pool.close().await;
    for process in processes {
        process.stop().await;
    }
    stack.stop().await
}

/// Now, in µs since the epoch.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rate_limit_holds_when_its_redis_restarts_or_is_flushed_mid_campaign()
-> anyhow::Result<()> {
    let (stack, mut redis) =
        tokio::try_join!(Stack::start_with(Mode::Serve), PrivateRedis::start())?;
    let relay = stack.spawn_messaging(Mode::Relay).await?;
    let tenant = TenantId::new();
    let audience = people(&stack, tenant, 450, "lent").await?;
    let (limit, burst) = (40, 10);
    let mut client = stack.messaging(tenant).await?;
    let rate = messaging::RateLimit {
        scope: messaging::RateLimitScope::Tenant as i32,
        per_second: limit,
        burst,
        ..Default::default()
    };
    let request = messaging::SetRateLimitRequest {
        rate_limit: Some(rate),
    };
    client.set_rate_limit(request).await?;
    let mut settings = stack.messaging_settings.clone();
    settings.ratelimit.redis_url = redis.url();
    settings.database.max_connections = SENDER_POOL;
    let mut senders = Vec::new();
    for n in 0..2 {
        senders.push(Process::start(&format!("sender{n}"), "worker", &settings).await?);
    }

    let campaign = stack.launch_campaign(tenant, tagged("lent")).await?;
    wait_for(&mut client, &campaign.id, SETTLE, |c| counts(c).sent >= 100).await?;
    let restarted_at = now_micros();
    redis.restart().await?;
    let restarted = counts(&wait_for(&mut client, &campaign.id, SETTLE, |_| true).await?);
    wait_for(&mut client, &campaign.id, SETTLE, |c| counts(c).sent >= 250).await?;
    let flushed_at = now_micros();
    redis.flush().await?;
    let flushed = counts(&wait_for(&mut client, &campaign.id, SETTLE, |_| true).await?);
    assert!(
        restarted.queued > 0 && flushed.queued > 0,
        "the campaign ended too soon: {restarted:?} {flushed:?}"
    );

    let done = wait_completed(&mut client, &campaign.id).await?;
    let copies = received(&stack)?;
    let tally = assert_settled(&stack.messaging_pool, &done, &audience, &copies).await?;
    assert_nobody_else(&copies, &audience);
    assert!(tally.exactly_once(audience.len()), "{tally:?}");

    let arrivals = received_at(stack.sink.dir())?;
    let recorded = sent_at(&stack.messaging_pool, &campaign.id).await?;
    let second = Duration::from_secs(1);
    let (most_received, received_from) = most_in_window(&arrivals, second);
    let (most_recorded, recorded_from) = most_in_window(&recorded, second);
    // Where the busiest second began, in ms after the restart and the flush.
    let after = |from: i64| ((from - restarted_at) / 1000, (from - flushed_at) / 1000);
    let report = format!(
        "most in one second: {most_received} received (from {:?} ms after the restart, \
         the flush), {most_recorded} recorded sent (from {:?} ms); limit {limit} + burst {burst}",
        after(received_from),
        after(recorded_from)
    );
    eprintln!("{report}");
    let ceiling = per_second_ceiling(limit, burst);
    assert!(most_received <= ceiling, "{report}");
    assert!(most_recorded <= ceiling, "{report}");
    for sender in &mut senders {
        sender.still_running()?;
    }
    for sender in senders {
        sender.stop().await;
    }
    stop_relay(relay).await?;
    stack.stop().await
}
