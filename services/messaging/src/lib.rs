//! The messaging service owns templates, campaigns and their deliveries,
//! the suppression list, unsubscribe links and the e-mail senders, and
//! exports and erases what it holds about a person.

pub mod api;
pub mod bounces;
pub mod confirmations;
pub mod consumers;
pub mod contacted;
pub mod deliveries;
pub mod jobs;
pub mod launch;
pub mod merges;
pub mod privacy;
pub mod ratelimit;
pub mod render;
pub mod segment;
pub mod sender;
pub mod smtp;
pub mod store;

use std::time::Duration;

use anyhow::Context;
use muster_proto::messaging::v1::messaging_service_server::MessagingServiceServer;
use muster_proto::messaging::v1::person_data_service_server::PersonDataServiceServer;
use muster_runtime::auth::{Authenticate, Signer};
use muster_runtime::bus::{Bus, TOPOLOGY};
use muster_runtime::config::{
    AmqpSettings, AuthSettings, DatabaseSettings, ListenSettings, TelemetrySettings,
};
use muster_runtime::confirmation::ConfirmationTokens;
use muster_runtime::consumer::ConsumerOptions;
use muster_runtime::privacy::{AddressHasher, PrivacySettings};
use muster_runtime::service::{Service, Tasks, bind};
use muster_runtime::unsubscribe::UnsubscribeTokens;
use muster_runtime::{db, grpc};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use muster_runtime::service::Mode;

pub use ratelimit::RateLimitSettings;
pub use smtp::SmtpSettings;

const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/muster_messaging"
max_connections = 20
migrate_on_start = true

[listen]
addr = "127.0.0.1:7152"
admin_addr = "127.0.0.1:9152"

[services]
contacts_url = "http://127.0.0.1:7151"

[smtp]
host = "127.0.0.1"
port = 2525
pool_size = 16
timeout_secs = 30

[sender]
concurrency = 16
group_size = 8
stale_claim_secs = 120
stall_after_secs = 600

[public]
base_url = "http://127.0.0.1:8080"

[confirmations]
from = "Muster <no-reply@muster.localhost>"
link_ttl_hours = 72

[bounces]
transient_limit = 3
transient_window_days = 7

[ratelimit]
redis_url = "redis://127.0.0.1:6379"
prefix = "muster:rl:"
provider = ""
refresh_secs = 5

[ratelimit.default_tenant]
per_second = 0
per_hour = 0
per_day = 0
burst = 0
"#;

const MIGRATIONS: &[db::Migration] = muster_runtime::migrations![
    1 => "0001_messaging.sql",
    2 => "0002_bounces.sql",
    3 => "0003_rate_limits.sql",
    4 => "0004_delivery_updates.sql",
    5 => "0005_stalled_campaigns.sql",
    6 => "0006_erasure.sql",
    7 => "0007_bounce_listings.sql",
    9 => "0009_merges.sql",
    10 => "0010_consent_versions.sql",
];

/// Everything messaging is configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub listen: ListenSettings,
    pub telemetry: TelemetrySettings,
    pub auth: AuthSettings,
    pub services: ServiceUrls,
    pub smtp: SmtpSettings,
    pub sender: SenderSettings,
    pub public: PublicSettings,
    pub bounces: BounceSettings,
    pub ratelimit: RateLimitSettings,
    pub privacy: PrivacySettings,
    pub confirmations: confirmations::ConfirmationSettings,
}

/// The services messaging calls.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceUrls {
    pub contacts_url: String,
}

/// How much a sender process does at once.
#[derive(Debug, Clone, Deserialize)]
pub struct SenderSettings {
    /// Send jobs handled at once (each a batch of deliveries).
    pub concurrency: u16,
    /// Deliveries of a job claimed together and sent concurrently (at most
    /// `smtp.pool_size`): fewer database round trips per message, and at
    /// most this many reported unknown per job when a process dies.
    pub group_size: u16,
    /// A delivery claimed this long ago without an answer recorded is
    /// reported unknown (its sender died after, or while, handing it to SMTP).
    pub stale_claim_secs: u64,
    /// A sending campaign whose due deliveries saw no claim for this long
    /// has its jobs enqueued again (they were lost to the broker).
    pub stall_after_secs: u64,
}

impl SenderSettings {
    /// [`Self::stale_claim_secs`] as a duration.
    pub fn stale_claim(&self) -> Duration {
        Duration::from_secs(self.stale_claim_secs)
    }

    /// [`Self::stall_after_secs`] as a duration.
    pub fn stall_after(&self) -> Duration {
        Duration::from_secs(self.stall_after_secs)
    }
}

/// Public addresses recipients see.
#[derive(Debug, Clone, Deserialize)]
pub struct PublicSettings {
    /// Where the gateway's public endpoints (unsubscribe) are reached.
    pub base_url: String,
}

/// When transient bounces suppress an address.
#[derive(Debug, Clone, Deserialize)]
pub struct BounceSettings {
    /// Transient bounces within the window that suppress the address.
    pub transient_limit: u32,
    /// The window, in days, counted back from the latest bounce.
    pub transient_window_days: u32,
}

/// The messaging binary.
pub struct Messaging;

impl Service for Messaging {
    const NAME: &'static str = "muster-messaging";
    type Settings = Settings;
    const MIGRATIONS: &'static [db::Migration] = MIGRATIONS;

    fn defaults() -> &'static str {
        DEFAULTS
    }

    fn telemetry(settings: &Settings) -> &TelemetrySettings {
        &settings.telemetry
    }

    fn database(settings: &Settings) -> &DatabaseSettings {
        &settings.database
    }

    async fn run(
        settings: Settings,
        mode: Mode,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        build(settings, mode).await?.run(shutdown).await
    }
}

/// A started but not yet running messaging process, its listeners bound.
pub struct Application {
    settings: Settings,
    mode: Mode,
    pool: PgPool,
    grpc: Option<TcpListener>,
    admin: TcpListener,
}

/// Connects, migrates when configured, declares the bus topology and binds.
pub async fn build(settings: Settings, mode: Mode) -> anyhow::Result<Application> {
    let pool = db::connect(&settings.database).await?;
    if settings.database.migrate_on_start {
        db::migrate(&pool, MIGRATIONS).await?;
    }
    let bus = Bus::connect(&settings.amqp, "messaging-setup").await?;
    bus.declare(TOPOLOGY).await?;
    bus.close().await;

    let grpc = match mode.serves() {
        true => Some(bind(&settings.listen.addr).await?),
        false => None,
    };
    let admin = bind(&settings.listen.admin_addr).await?;
    Ok(Application {
        settings,
        mode,
        pool,
        grpc,
        admin,
    })
}

impl Application {
    /// The gRPC port, when this process serves the API.
    pub fn grpc_port(&self) -> Option<u16> {
        self.grpc
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// The database pool (tests inspect through it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs until `shutdown`, then drains and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let settings = &self.settings;
        let signer = Signer::new(&settings.auth.token_secret);
        let tokens = UnsubscribeTokens::new(&settings.auth.token_secret);
        let hasher = AddressHasher::new(&settings.privacy);
        let mut tasks = Tasks::new(shutdown);

        if let Some(listener) = self.grpc {
            let contacts =
                tonic::transport::Endpoint::from_shared(settings.services.contacts_url.clone())
                    .context("services.contacts_url is not a URL")?
                    .connect_lazy();
            let launcher = launch::Launcher {
                pool: self.pool.clone(),
                contacts,
                signer: signer.clone(),
                hasher: hasher.clone(),
            };
            launcher.resume_interrupted().await?;
            let (router, health) = grpc::base_router(&[
                "muster.messaging.v1.MessagingService",
                "muster.messaging.v1.PersonDataService",
            ])?;
            health
                .set_serving::<MessagingServiceServer<api::Api>>()
                .await;
            health
                .set_serving::<PersonDataServiceServer<privacy::PrivacyApi>>()
                .await;
            let people = privacy::PrivacyApi {
                pool: self.pool.clone(),
            };
            let api = api::Api {
                pool: self.pool.clone(),
                launcher,
                tokens: tokens.clone(),
                stale_claim: settings.sender.stale_claim(),
                bounces: settings.bounces.clone(),
            };
            let router = router
                .add_service(MessagingServiceServer::with_interceptor(
                    api,
                    Authenticate(signer.clone()),
                ))
                .add_service(PersonDataServiceServer::with_interceptor(
                    people,
                    Authenticate(signer),
                ));
            tracing::info!(addr = %listener.local_addr()?, "messaging gRPC listening");
            tasks.spawn(grpc::serve(router, listener, tasks.shutdown()));
        }
        if self.mode.works() {
            let smtp = smtp::Relay::new(&settings.smtp);
            let public_url = settings.public.base_url.clone();
            let limiter = ratelimit::Limiter::new(
                &settings.ratelimit,
                &settings.smtp.host,
                self.pool.clone(),
            )?;
            let pacing = sender::Pacing {
                limiter,
                shutdown: tasks.shutdown(),
            };
            let capacity = sender::Capacity {
                connections: settings.smtp.pool_size as usize,
                group: settings.sender.group_size as usize,
            };
            let results = db::connect_relaxed(&settings.database).await?;
            let sender = sender::Sender::new(
                self.pool.clone(),
                results,
                smtp,
                tokens,
                public_url,
                pacing,
                capacity,
            );
            let concurrency = settings.sender.concurrency;
            let options = ConsumerOptions {
                queue: jobs::SEND_QUEUE,
                concurrency,
            };
            tasks.consume(&settings.amqp, options, sender);

            let projection = consumers::ConsentProjection {
                pool: self.pool.clone(),
            };
            let options = ConsumerOptions {
                queue: "messaging.consent",
                concurrency: 8,
            };
            tasks.consume(&settings.amqp, options, projection);

            let erasures = privacy::Erasures {
                pool: self.pool.clone(),
                hasher: hasher.clone(),
            };
            let options = ConsumerOptions {
                queue: privacy::ERASURES_QUEUE,
                concurrency: 8,
            };
            tasks.consume(&settings.amqp, options, erasures);

            let merges = merges::Merges {
                pool: self.pool.clone(),
            };
            let options = ConsumerOptions {
                queue: merges::MERGES_QUEUE,
                concurrency: 8,
            };
            tasks.consume(&settings.amqp, options, merges);

            let confirmations = confirmations::Confirmations {
                pool: self.pool.clone(),
                smtp: smtp::Relay::new(&settings.smtp),
                tokens: ConfirmationTokens::new(&settings.auth.token_secret),
                public_url: settings.public.base_url.trim_end_matches('/').to_owned(),
                from: settings
                    .confirmations
                    .from
                    .parse()
                    .context("confirmations.from is not a mailbox (Name <address>)")?,
                link_ttl: Duration::from_secs(settings.confirmations.link_ttl_hours * 3_600),
                hasher: hasher.clone(),
            };
            let options = ConsumerOptions {
                queue: confirmations::QUEUE,
                concurrency: 4,
            };
            tasks.consume(&settings.amqp, options, confirmations);

            let (pool, sender, stop) =
                (self.pool.clone(), settings.sender.clone(), tasks.shutdown());
            tasks.spawn(async move {
                watch_campaigns(pool, sender, stop).await;
                Ok(())
            });
        }
        if self.mode.relays() {
            tasks.relay(&self.pool, &settings.amqp);
        }
        tasks.admin(self.admin, &self.pool);
        tasks.join().await
    }
}

/// Twice per stale-claim period: marks claims of dead processes as unknown
/// and enqueues again the jobs of campaigns that stalled.
async fn watch_campaigns(pool: PgPool, settings: SenderSettings, shutdown: CancellationToken) {
    let stale = settings.stale_claim();
    loop {
        match store::reap_stale_claims(&pool, None, stale).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(deliveries = n, "claims of a stopped sender marked unknown"),
            Err(error) => tracing::warn!(%error, "could not check for stale claims"),
        }
        match store::requeue_stalled(&pool, settings.stall_after()).await {
            Ok(requeued) => {
                for (campaign, deliveries) in requeued {
                    tracing::warn!(campaign_id = %campaign, deliveries,
                        "campaign stalled (its send jobs were lost); jobs enqueued again");
                }
            }
            Err(error) => tracing::warn!(%error, "could not check for stalled campaigns"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(stale / 2) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    muster_runtime::test_migrations_listed!(super::MIGRATIONS);
}
