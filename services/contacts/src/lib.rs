//! The contacts service owns people: their e-mail addresses, phones,
//! addresses, tags, the consent ledger, imports of supporter files and
//! segments. It announces changes on the bus and applies unsubscribes that
//! messaging reports.

pub mod api;
pub mod consumers;
pub mod domain;
pub mod events;
pub mod import;
pub mod segment;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use muster_proto::contacts::v1::contacts_service_server::ContactsServiceServer;
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

const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/muster_contacts"
max_connections = 10
migrate_on_start = true

[listen]
addr = "127.0.0.1:50051"
admin_addr = "127.0.0.1:9151"

[import]
spool_dir = ""
"#;

const MIGRATIONS: &[db::Migration] = muster_runtime::migrations![1 => "0001_people.sql"];

/// Everything contacts is configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub listen: ListenSettings,
    pub telemetry: TelemetrySettings,
    pub auth: AuthSettings,
    pub import: ImportSettings,
}

/// Where uploads wait to be read.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportSettings {
    /// Empty: a folder in the system's temporary directory.
    pub spool_dir: String,
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
    /// gRPC API (imports run where they were uploaded).
    Serve,
    /// Bus consumers.
    Worker,
    /// Outbox relay.
    Relay,
    /// All of the above, for a single-process deployment.
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

/// A started but not yet running contacts process, its listeners bound.
pub struct Application {
    settings: Settings,
    mode: Mode,
    pool: PgPool,
    grpc: Option<TcpListener>,
    admin: TcpListener,
    spool_dir: PathBuf,
}

/// Connects, migrates when configured, declares the bus topology and binds.
pub async fn build(settings: Settings, mode: Mode) -> anyhow::Result<Application> {
    let pool = db::connect(&settings.database).await?;
    if settings.database.migrate_on_start {
        db::migrate(&pool, MIGRATIONS).await?;
    }
    if mode.works() || mode.relays() {
        let bus = Bus::connect(&settings.amqp, "contacts-setup").await?;
        bus.declare(TOPOLOGY).await?;
        bus.close().await;
    }

    let spool_dir = match settings.import.spool_dir.as_str() {
        "" => std::env::temp_dir().join("muster-imports"),
        dir => PathBuf::from(dir),
    };
    std::fs::create_dir_all(&spool_dir)
        .with_context(|| format!("creating the import spool folder {}", spool_dir.display()))?;

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
        spool_dir,
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
        let mut tasks = JoinSet::new();
        let interrupted = store::imports::fail_interrupted(&self.pool).await?;
        if interrupted > 0 {
            tracing::warn!(
                count = interrupted,
                "imports interrupted by an earlier stop marked failed"
            );
        }

        if let Some(listener) = self.grpc {
            let (router, health) = grpc::base_router(&["muster.contacts.v1.ContactsService"])?;
            health
                .set_serving::<ContactsServiceServer<api::Api>>()
                .await;
            let api = api::Api {
                pool: self.pool.clone(),
                spool_dir: self.spool_dir.clone(),
            };
            let signer = Signer::new(&self.settings.auth.token_secret);
            let router = router.add_service(ContactsServiceServer::with_interceptor(
                api,
                Authenticate(signer),
            ));
            tracing::info!(addr = %listener.local_addr()?, "contacts gRPC listening");
            tasks.spawn(grpc::serve(router, listener, shutdown.clone()));
        }
        if self.mode.works() {
            let handler = Arc::new(consumers::Unsubscribes {
                pool: self.pool.clone(),
            });
            let options = ConsumerOptions {
                queue: "contacts.unsubscribes",
                concurrency: 8,
            };
            let (amqp, stop) = (self.settings.amqp.clone(), shutdown.clone());
            tasks.spawn(async move {
                consumer::run(amqp, options, handler, stop).await;
                Ok(())
            });
        }
        if self.mode.relays() {
            let relay = Relay::new(self.pool.clone(), self.settings.amqp.clone());
            let stop = shutdown.clone();
            tasks.spawn(async move {
                relay.run(stop).await;
                Ok(())
            });
        }
        let (pool, stop) = (self.pool.clone(), shutdown.clone());
        let admin = self.admin;
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
