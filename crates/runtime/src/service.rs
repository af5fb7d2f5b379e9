//! What every service binary shares: its modes, its `main`, settings
//! loading, binding listeners, and the set of tasks a process runs until
//! shutdown.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{AmqpSettings, COMMON_DEFAULTS, DatabaseSettings, TelemetrySettings};
use crate::consumer::{self, ConsumerOptions, Handler};
use crate::db::Migration;
use crate::outbox::Relay;

/// Which parts of a service a process runs, so that Kubernetes can scale
/// senders without scaling the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The gRPC API.
    Serve,
    /// Bus consumers and background workers.
    Worker,
    /// The outbox relay.
    Relay,
    /// All of the above in one process.
    All,
}

impl Mode {
    /// Whether this process serves the API.
    pub fn serves(self) -> bool {
        matches!(self, Self::Serve | Self::All)
    }

    /// Whether this process consumes from the bus.
    pub fn works(self) -> bool {
        matches!(self, Self::Worker | Self::All)
    }

    /// Whether this process relays the outbox.
    pub fn relays(self) -> bool {
        matches!(self, Self::Relay | Self::All)
    }
}

/// A service binary: its settings and how it migrates and runs.
pub trait Service {
    /// The binary's name, e.g. `muster-contacts`.
    const NAME: &'static str;
    type Settings: DeserializeOwned;

    /// The migrations embedded in the binary.
    const MIGRATIONS: &'static [Migration];

    /// The service's compiled-in defaults (TOML), under [`COMMON_DEFAULTS`].
    fn defaults() -> &'static str;
    fn telemetry(settings: &Self::Settings) -> &TelemetrySettings;
    fn database(settings: &Self::Settings) -> &DatabaseSettings;

    /// Applies pending migrations (`NAME migrate`).
    fn migrate(settings: Self::Settings) -> impl Future<Output = anyhow::Result<()>> {
        async move {
            let pool = crate::db::connect(Self::database(&settings)).await?;
            crate::db::migrate(&pool, Self::MIGRATIONS).await
        }
    }

    fn run(
        settings: Self::Settings,
        mode: Mode,
        shutdown: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>>;
}

/// Settings from defaults, then `MUSTER_CONFIG`, then `MUSTER_*` variables.
pub fn load_settings<S: Service>() -> anyhow::Result<S::Settings> {
    crate::config::load(&format!("{COMMON_DEFAULTS}\n{}", S::defaults()))
}

/// Settings from the compiled-in defaults alone (tests override the rest).
pub fn default_settings<S: Service>() -> anyhow::Result<S::Settings> {
    let merged = format!("{COMMON_DEFAULTS}\n{}", S::defaults());
    Ok(config::Config::builder()
        .add_source(config::File::from_str(&merged, config::FileFormat::Toml))
        .build()?
        .try_deserialize()?)
}

/// The `main` of a service binary: `NAME [serve|worker|relay|all|migrate]`.
pub fn main<S: Service>() -> ExitCode {
    let mode = match std::env::args().nth(1).as_deref() {
        None | Some("all") => Some(Mode::All),
        Some("serve") => Some(Mode::Serve),
        Some("worker") => Some(Mode::Worker),
        Some("relay") => Some(Mode::Relay),
        Some("migrate") => None,
        Some(other) => {
            eprintln!(
                "{}: unknown mode {other:?}: use serve, worker, relay, all or migrate",
                S::NAME
            );
            return ExitCode::from(2);
        }
    };
    let settings = match load_settings::<S>() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{}: {error:#}", S::NAME);
            return ExitCode::from(78);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the async runtime: {error}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let _telemetry = crate::telemetry::init(S::NAME, S::telemetry(&settings))?;
        let outcome = match mode {
            None => S::migrate(settings).await,
            Some(mode) => S::run(settings, mode, crate::shutdown::on_signals()).await,
        };
        if let Err(error) = &outcome {
            tracing::error!(error = format!("{error:#}"), "stopped on an error");
        }
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}: {error:#}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

/// Binds a TCP listener; port 0 picks a free port.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}: is the port taken?"))
}

/// The long-running tasks of one process. The first to fail stops the others.
pub struct Tasks {
    set: JoinSet<anyhow::Result<()>>,
    shutdown: CancellationToken,
}

impl Tasks {
    /// An empty set stopped by `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            set: JoinSet::new(),
            shutdown,
        }
    }

    /// The token every task watches.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs `task` until it ends.
    pub fn spawn(&mut self, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.set.spawn(task);
    }

    /// Consumes a queue with `handler` until shutdown.
    pub fn consume<H: Handler>(
        &mut self,
        amqp: &AmqpSettings,
        options: ConsumerOptions,
        handler: H,
    ) {
        let (amqp, stop) = (amqp.clone(), self.shutdown());
        self.set.spawn(async move {
            consumer::run(amqp, options, Arc::new(handler), stop).await;
            Ok(())
        });
    }

    /// Relays the outbox of `pool` until shutdown.
    pub fn relay(&mut self, pool: &PgPool, amqp: &AmqpSettings) {
        let (relay, stop) = (Relay::new(pool.clone(), amqp.clone()), self.shutdown());
        self.set.spawn(async move {
            relay.run(stop).await;
            Ok(())
        });
    }

    /// Serves `/healthz` and `/readyz` on `listener` until shutdown.
    pub fn admin(&mut self, listener: TcpListener, pool: &PgPool) {
        let (pool, stop) = (pool.clone(), self.shutdown());
        self.set.spawn(async move {
            crate::admin::serve(listener, pool, stop).await;
            Ok(())
        });
    }

    /// Waits for every task; on the first failure, stops the rest and returns it.
    pub async fn join(mut self) -> anyhow::Result<()> {
        while let Some(finished) = self.set.join_next().await {
            if let Err(error) = finished.context("a task panicked").and_then(|r| r) {
                self.shutdown.cancel();
                while self.set.join_next().await.is_some() {}
                return Err(error);
            }
        }
        Ok(())
    }
}
