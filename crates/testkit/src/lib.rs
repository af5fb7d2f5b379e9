//! Test support: every test gets its own PostgreSQL database, its own
//! RabbitMQ name prefix and, when it sends mail, its own real SMTP sink
//! (Postfix's `smtp-sink`), so tests run in parallel against real servers.

pub mod fault_smtp;
pub mod servers;
mod smtp;

pub use fault_smtp::FaultSmtp;
pub use smtp::{ReceivedMessage, SmtpSink};

use anyhow::Context;
use muster_runtime::config::{AmqpSettings, DatabaseSettings};
use sqlx::{Connection, PgConnection};

/// Where the test PostgreSQL server is; `MUSTER_TEST_PG` overrides.
pub fn postgres_server() -> String {
    std::env::var("MUSTER_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Where the test RabbitMQ broker is; `MUSTER_TEST_AMQP` overrides.
pub fn amqp_url() -> String {
    std::env::var("MUSTER_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A short random token for names.
pub fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_owned()
}

/// Creates an empty database named `muster_t_<label>_<random>` and returns its settings.
pub async fn fresh_database(label: &str) -> anyhow::Result<DatabaseSettings> {
    let server = postgres_server();
    let name = format!("muster_t_{label}_{}", unique());
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .context("connecting to the test PostgreSQL; run deploy/local/services.sh")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating test database {name}"))?;
    Ok(DatabaseSettings {
        url: format!("{server}/{name}"),
        max_connections: 10,
        migrate_on_start: true,
    })
}

/// Broker settings with a private prefix, so this test's queues are its own.
pub fn fresh_amqp() -> AmqpSettings {
    AmqpSettings {
        url: amqp_url(),
        prefix: format!("t{}.", unique()),
        prefetch: 32,
        delivery_limit: 3,
        dead_letter_days: 30,
    }
}

/// A port free on 127.0.0.1 at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16, patience: std::time::Duration) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    while started.elapsed() < patience {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("nothing listens on 127.0.0.1:{port} after {patience:?}")
}

/// The root of the repository (for the shared data files).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Deletes the queues and exchanges a test declared under its prefix.
pub async fn drop_topology(amqp: &AmqpSettings) -> anyhow::Result<()> {
    use muster_runtime::bus::{Bus, TOPOLOGY};
    let bus = Bus::connect(amqp, "test-cleanup").await?;
    let channel = bus.channel().await?;
    for spec in TOPOLOGY {
        let queue = bus.name(spec.name);
        let retries =
            (0..spec.retry_delays.len()).map(|step| muster_runtime::bus::retry_queue(&queue, step));
        for name in [queue.clone(), format!("{queue}.dead")]
            .into_iter()
            .chain(retries)
        {
            channel
                .queue_delete(name.as_str().into(), Default::default())
                .await?;
        }
    }
    for exchange in [muster_runtime::bus::EVENTS_EXCHANGE, "muster.dead"] {
        channel
            .exchange_delete(bus.name(exchange).as_str().into(), Default::default())
            .await?;
    }
    bus.close().await;
    Ok(())
}

/// Drops a database made by [`fresh_database`], closing its connections.
pub async fn drop_database(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let name = settings.url.rsplit('/').next().unwrap_or_default();
    anyhow::ensure!(
        name.starts_with("muster_t_"),
        "refusing to drop {name}: not a test database"
    );
    let mut admin = PgConnection::connect(&format!("{}/postgres", postgres_server())).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}
