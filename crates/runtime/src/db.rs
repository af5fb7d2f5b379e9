//! PostgreSQL: the pool and embedded migrations, applied in order under an
//! advisory lock so that several processes can start at once.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseSettings;

/// One migration embedded in a service binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Embeds `migrations/<file>` of the calling crate, numbered in order.
#[macro_export]
macro_rules! migrations {
    ($($version:literal => $file:literal),* $(,)?) => {
        &[$($crate::db::Migration {
            version: $version,
            name: $file,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $file)),
        }),*]
    };
}

/// What is wrong between a service's `migrations/` folder and the list it
/// embeds: a file the list leaves out is a migration written and never run
/// (its service starts without it, and fails on its first query); a
/// version that is not the file's number runs it out of order. Each
/// service's tests call it on its own list.
pub fn listing_errors(dir: &str, migrations: &[Migration]) -> std::io::Result<Vec<String>> {
    let mut errors = Vec::new();
    let mut files: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    for file in &files {
        if !migrations.iter().any(|m| m.name == file) {
            errors.push(format!("{file} is not listed"));
        }
    }
    for migration in migrations {
        let number = migration
            .name
            .split('_')
            .next()
            .and_then(|n| n.parse().ok());
        if number != Some(migration.version) {
            errors.push(format!(
                "{} is listed as version {}",
                migration.name, migration.version
            ));
        }
    }
    Ok(errors)
}

/// A test, in the calling service's crate, that [`listing_errors`] finds
/// nothing wrong between its `migrations/` folder and `$list`.
#[macro_export]
macro_rules! test_migrations_listed {
    ($list:expr) => {
        #[test]
        fn every_migration_file_is_listed_under_its_number() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
            let errors = $crate::db::listing_errors(dir, $list).unwrap();
            assert!(errors.is_empty(), "{errors:?}");
        }
    };
}

/// The outbox and inbox tables every service carries (version 0).
const BUS_TABLES: Migration = Migration {
    version: 0,
    name: "bus_tables.sql",
    sql: include_str!("bus_tables.sql"),
};

/// Opens a pool on `settings.url`.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&settings.url)
        .await
        .context(
            "connecting to PostgreSQL (database.url): is it running, and does the database \
             exist? deploy/local/services.sh starts it and creates the databases",
        )
}

/// Opens a pool whose commits do not wait for the disk
/// (`synchronous_commit = off`): for writes whose loss in a database crash is
/// harmless, such as a result that is otherwise reported as unknown.
pub async fn connect_relaxed(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = sqlx::postgres::PgConnectOptions::from_str(&settings.url)
        .context("database.url is not a PostgreSQL URL")?
        .options([("synchronous_commit", "off")]);
    // A quarter of the main pool: these writes are short and never wait.
    PgPoolOptions::new()
        .max_connections((settings.max_connections / 4).max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL (database.url)")
}

/// Applies the migrations not yet applied, each in its own transaction.
pub async fn migrate(pool: &PgPool, migrations: &[Migration]) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(7243019)")
        .execute(&mut *conn)
        .await?;
    let result = apply(&mut conn, migrations).await;
    sqlx::query("SELECT pg_advisory_unlock(7243019)")
        .execute(&mut *conn)
        .await?;
    result
}

async fn apply(conn: &mut sqlx::PgConnection, migrations: &[Migration]) -> anyhow::Result<()> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('muster_migrations')::text")
            .fetch_one(&mut *conn)
            .await?;
    if exists.is_none() {
        sqlx::raw_sql(
            "CREATE TABLE muster_migrations (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .execute(&mut *conn)
        .await?;
    }
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM muster_migrations")
        .fetch_all(&mut *conn)
        .await?;

    for migration in std::iter::once(&BUS_TABLES).chain(migrations) {
        if applied.contains(&migration.version) {
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("applying migration {}", migration.name))?;
        sqlx::query("INSERT INTO muster_migrations (version, name) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
    }
    Ok(())
}
