//! The messaging service owns templates, campaigns and their deliveries,
//! the suppression list, unsubscribe links and the e-mail senders.

pub mod api;
pub mod consumers;
pub mod jobs;
pub mod launch;
pub mod render;
pub mod segment;
pub mod sender;
pub mod store;
pub mod unsubscribe;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use muster_proto::messaging::v1::messaging_service_server::MessagingServiceServer;
use muster_runtime::auth::{Authenticate, Signer};
use muster_runtime::bus::{Bus, TOPOLOGY};
use muster_runtime::config::{
    AmqpSettings, AuthSettings, COMMON_DEFAULTS, DatabaseSettings, ListenSettings,
    TelemetrySettings,
};
use muster_runtime::consumer::ConsumerOptions;
use muster_runtime::outbox::Relay;
use muster_runtime::{admin, consumer, db, grpc};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use sender::SmtpSettings;

const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/muster_messaging"
max_connections = 20
migrate_on_start = true

[listen]
addr = "127.0.0.1:50052"
admin_addr = "127.0.0.1:9152"

[services]
contacts_url = "http://127.0.0.1:50051"

[smtp]
host = "127.0.0.1"
port = 2525
pool_size = 16
timeout_secs = 30

[sender]
concurrency = 16
stale_claim_secs = 120

[public]
base_url = "http://127.0.0.1:8080"
"#;

const MIGRATIONS: &[db::Migration] = muster_runtime::migrations![1 => "0001_messaging.sql"];

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
    /// A delivery claimed this long ago without an answer recorded is
    /// reported unknown (its sender died after, or while, handing it to SMTP).
    pub stale_claim_secs: u64,
}

impl SenderSettings {
    /// [`Self::stale_claim_secs`] as a duration.
    pub fn stale_claim(&self) -> Duration {
        Duration::from_secs(self.stale_claim_secs)
    }
}

/// Public addresses recipients see.
#[derive(Debug, Clone, Deserialize)]
pub struct PublicSettings {
    /// Where the gateway's public endpoints (unsubscribe) are reached.
    pub base_url: String,
}

impl Settings {
    /// Defaults, then `MUSTER_CONFIG`, then `MUSTER_*` variables.
    pub fn load() -> anyhow::Result<Self> {
        muster_runtime::config::load(&format!("{COMMON_DEFAULTS}\n{DEFAULTS}"))
    }

    /// The compiled-in defaults alone (tests override what they need).
    pub fn defaults() -> anyhow::Result<Self> {
        let merged = format!("{COMMON_DEFAULTS}\n{DEFAULTS}");
        Ok(config::Config::builder()
            .add_source(config::File::from_str(&merged, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?)
    }
}

/// Which parts of the service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// gRPC API and campaign launches.
    Serve,
    /// E-mail senders and the suppression projection.
    Worker,
    /// Outbox relay.
    Relay,
    /// All of the above.
    All,
}

impl Mode {
    fn serves(self) -> bool {
        matches!(self, Self::Serve | Self::All)
    }

    fn works(self) -> bool {
        matches!(self, Self::Worker | Self::All)
    }

    fn relays(self) -> bool {
        matches!(self, Self::Relay | Self::All)
    }
}

/// Applies pending migrations and returns.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool, MIGRATIONS).await
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

async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
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
        let tokens = unsubscribe::Tokens::new(&settings.auth.token_secret);
        let mut tasks = JoinSet::new();

        if let Some(listener) = self.grpc {
            let contacts =
                tonic::transport::Endpoint::from_shared(settings.services.contacts_url.clone())
                    .context("services.contacts_url is not a URL")?
                    .connect_lazy();
            let launcher = launch::Launcher {
                pool: self.pool.clone(),
                contacts,
                signer: signer.clone(),
            };
            launcher.resume_interrupted().await?;
            let (router, health) = grpc::base_router(&["muster.messaging.v1.MessagingService"])?;
            health
                .set_serving::<MessagingServiceServer<api::Api>>()
                .await;
            let api = api::Api {
                pool: self.pool.clone(),
                launcher,
                tokens: tokens.clone(),
                stale_claim: settings.sender.stale_claim(),
            };
            let router = router.add_service(MessagingServiceServer::with_interceptor(
                api,
                Authenticate(signer),
            ));
            tracing::info!(addr = %listener.local_addr()?, "messaging gRPC listening");
            tasks.spawn(grpc::serve(router, listener, shutdown.clone()));
        }
        if self.mode.works() {
            let smtp = sender::transport(&settings.smtp);
            let sender = sender::Sender::new(
                self.pool.clone(),
                smtp,
                tokens,
                settings.public.base_url.clone(),
            );
            let options = ConsumerOptions {
                queue: jobs::SEND_QUEUE,
                concurrency: settings.sender.concurrency,
            };
            let (amqp, stop) = (settings.amqp.clone(), shutdown.clone());
            tasks.spawn(async move {
                consumer::run(amqp, options, Arc::new(sender), stop).await;
                Ok(())
            });

            let projection = consumers::ConsentProjection {
                pool: self.pool.clone(),
            };
            let options = ConsumerOptions {
                queue: "messaging.consent",
                concurrency: 8,
            };
            let (amqp, stop) = (settings.amqp.clone(), shutdown.clone());
            tasks.spawn(async move {
                consumer::run(amqp, options, Arc::new(projection), stop).await;
                Ok(())
            });

            let (pool, stop, stale) = (
                self.pool.clone(),
                shutdown.clone(),
                settings.sender.stale_claim(),
            );
            tasks.spawn(async move {
                reap(pool, stale, stop).await;
                Ok(())
            });
        }
        if self.mode.relays() {
            let relay = Relay::new(self.pool.clone(), settings.amqp.clone());
            let stop = shutdown.clone();
            tasks.spawn(async move {
                relay.run(stop).await;
                Ok(())
            });
        }
        let (pool, stop, admin) = (self.pool.clone(), shutdown.clone(), self.admin);
        tasks.spawn(async move {
            admin::serve(admin, pool, stop).await;
            Ok(())
        });

        while let Some(finished) = tasks.join_next().await {
            if let Err(error) = finished.context("a task panicked").and_then(|r| r) {
                shutdown.cancel();
                return Err(error);
            }
        }
        Ok(())
    }
}

/// Marks claims of dead processes as unknown, twice per `stale` period.
async fn reap(pool: PgPool, stale: Duration, shutdown: CancellationToken) {
    loop {
        match store::reap_stale_claims(&pool, None, stale).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(deliveries = n, "claims of a stopped sender marked unknown"),
            Err(error) => tracing::warn!(%error, "could not check for stale claims"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(stale / 2) => {}
        }
    }
}
