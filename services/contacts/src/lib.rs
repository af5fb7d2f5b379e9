//! The contacts service owns people: their e-mail addresses, phones,
//! addresses, tags, the consent ledger, imports of supporter files and
//! segments, and the export and erasure of a person's data. It announces
//! changes on the bus, applies unsubscribes that messaging reports, and
//! projects sends, donations and attendance other services announce.

pub mod api;
pub mod consent;
pub mod consumers;
pub mod domain;
pub mod events;
pub mod import;
pub mod merge;
pub mod privacy;
pub mod projections;
pub mod segment;
pub mod store;

use std::path::PathBuf;

use anyhow::Context;
use muster_proto::contacts::v1::consent_service_server::ConsentServiceServer;
use muster_proto::contacts::v1::contacts_service_server::ContactsServiceServer;
use muster_proto::contacts::v1::person_data_service_server::PersonDataServiceServer;
use muster_runtime::auth::{Authenticate, Signer};
use muster_runtime::bus::{Bus, TOPOLOGY};
use muster_runtime::config::{
    AmqpSettings, AuthSettings, DatabaseSettings, ListenSettings, TelemetrySettings,
};
use muster_runtime::confirmation::ConfirmationTokens;
use muster_runtime::consumer::ConsumerOptions;
use muster_runtime::privacy::{AddressHasher, PrivacySettings};
use muster_runtime::service::{Service, Tasks, bind};
use muster_runtime::{db, grpc};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use muster_runtime::service::Mode;

const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/muster_contacts"
max_connections = 10
migrate_on_start = true

[listen]
addr = "127.0.0.1:7151"
admin_addr = "127.0.0.1:9151"

[import]
spool_dir = ""
writers = 2
"#;

const MIGRATIONS: &[db::Migration] = muster_runtime::migrations![
    1 => "0001_people.sql",
    2 => "0002_territory.sql",
    4 => "0004_erasure.sql",
    5 => "0005_segments.sql",
    6 => "0006_erased_phones.sql",
    7 => "0007_consent_ledger.sql",
    8 => "0008_merges.sql",
    9 => "0009_custom_fields.sql",
    11 => "0011_composed_tags.sql",
    12 => "0012_stored_name_key.sql",
    13 => "0013_import_duplicates.sql",
    14 => "0014_import_issues_by_line.sql",
    15 => "0015_last_contacts.sql",
    16 => "0016_shared_phone_numbers.sql",
    17 => "0017_phone_without_email_lookup.sql",
];

/// Everything contacts is configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub listen: ListenSettings,
    pub telemetry: TelemetrySettings,
    pub auth: AuthSettings,
    pub import: ImportSettings,
    pub privacy: PrivacySettings,
}

/// Where uploads wait to be read.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportSettings {
    /// Empty: a folder in the system's temporary directory.
    pub spool_dir: String,
    /// Transactions one import writes at once (1 to 8). The rows of one
    /// person always go to the same one, in the order of the file.
    pub writers: usize,
}

/// The writers each import uses: `configured`, brought within 1 to
/// [`import::job::MAX_WRITERS`] with a warning that says so.
fn import_writers(configured: usize) -> usize {
    let writers = configured.clamp(1, import::job::MAX_WRITERS);
    if writers != configured {
        tracing::warn!(
            configured,
            writers,
            "import.writers must be from 1 to {}; using {writers}",
            import::job::MAX_WRITERS
        );
    }
    writers
}

/// The contacts binary.
pub struct Contacts;

impl Service for Contacts {
    const NAME: &'static str = "muster-contacts";
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
        let interrupted = store::imports::fail_interrupted(&self.pool).await?;
        if interrupted > 0 {
            tracing::warn!(
                count = interrupted,
                "imports interrupted by an earlier stop marked failed"
            );
        }

        let amqp = &self.settings.amqp;
        let mut tasks = Tasks::new(shutdown);
        if let Some(listener) = self.grpc {
            let (router, health) = grpc::base_router(&[
                "muster.contacts.v1.ContactsService",
                "muster.contacts.v1.PersonDataService",
                "muster.contacts.v1.ConsentService",
            ])?;
            health
                .set_serving::<ContactsServiceServer<api::Api>>()
                .await;
            health
                .set_serving::<PersonDataServiceServer<privacy::PrivacyApi>>()
                .await;
            health
                .set_serving::<ConsentServiceServer<consent::api::ConsentApi>>()
                .await;
            let hasher = AddressHasher::new(&self.settings.privacy);
            let api = api::Api {
                pool: self.pool.clone(),
                spool_dir: self.spool_dir.clone(),
                import_writers: import_writers(self.settings.import.writers),
                hasher: hasher.clone(),
            };
            let people = privacy::PrivacyApi {
                pool: self.pool.clone(),
                hasher: hasher.clone(),
            };
            let ledger = consent::api::ConsentApi {
                pool: self.pool.clone(),
                tokens: ConfirmationTokens::new(&self.settings.auth.token_secret),
                hasher,
            };
            let signer = Signer::new(&self.settings.auth.token_secret);
            let router = router
                .add_service(ConsentServiceServer::with_interceptor(
                    ledger,
                    Authenticate(signer.clone()),
                ))
                .add_service(ContactsServiceServer::with_interceptor(
                    api,
                    Authenticate(signer.clone()),
                ))
                .add_service(PersonDataServiceServer::with_interceptor(
                    people,
                    Authenticate(signer),
                ));
            tracing::info!(addr = %listener.local_addr()?, "contacts gRPC listening");
            tasks.spawn(grpc::serve(router, listener, tasks.shutdown()));
        }
        if self.mode.works() {
            let handler = consumers::Unsubscribes {
                pool: self.pool.clone(),
            };
            let options = ConsumerOptions {
                queue: "contacts.unsubscribes",
                concurrency: 8,
            };
            tasks.consume(amqp, options, handler);

            let confirmations = consumers::ErasureConfirmations {
                pool: self.pool.clone(),
            };
            let options = ConsumerOptions {
                queue: consumers::CONFIRMATIONS_QUEUE,
                concurrency: 8,
            };
            tasks.consume(amqp, options, confirmations);

            let pool = &self.pool;
            let options = |queue| ConsumerOptions {
                queue,
                concurrency: 4,
            };
            let contacted = projections::Contacted { pool: pool.clone() };
            tasks.consume(amqp, options(projections::CONTACTED_QUEUE), contacted);
            let donations = projections::Donations { pool: pool.clone() };
            tasks.consume(amqp, options(projections::DONATIONS_QUEUE), donations);
            let attendance = projections::Attendance { pool: pool.clone() };
            tasks.consume(amqp, options(projections::ATTENDANCE_QUEUE), attendance);
        }
        if self.mode.relays() {
            tasks.relay(&self.pool, amqp);
        }
        tasks.admin(self.admin, &self.pool);
        tasks.join().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn import_writers_stay_within_their_bounds() {
        let writers: Vec<usize> = [0, 1, 2, 8, 9].map(super::import_writers).into();
        assert_eq!(writers, [1, 1, 2, 8, 8]);
    }

    muster_runtime::test_migrations_listed!(super::MIGRATIONS);
}
