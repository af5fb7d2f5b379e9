//! What the contacts service's own tests share: a contacts process started
//! in this test's runtime against its own fresh database, and a client for
//! one organization.
#![allow(
    dead_code,
    reason = "each test crate compiles this module and uses a part of it"
)]

use std::time::Duration;

use muster_contacts::{Mode, Settings};
use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_runtime::TenantId;
use muster_runtime::auth::{Bearer, Signer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Client = ContactsServiceClient<InterceptedService<Channel, Bearer>>;

/// A contacts process and its database (and, when it consumes the bus, its
/// own queue prefix).
pub struct Service {
    pub pool: PgPool,
    /// Where the process's broker topology lives.
    pub amqp: muster_runtime::config::AmqpSettings,
    port: u16,
    secret: String,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
    uses_bus: bool,
    database: muster_runtime::config::DatabaseSettings,
}

impl Service {
    /// Starts contacts serving its API on free ports with a fresh database
    /// named after `label`.
    pub async fn start(label: &str) -> anyhow::Result<Self> {
        Self::start_as(label, Mode::Serve).await
    }

    /// [`Service::start`] in `mode`; a mode that uses the bus gets a queue
    /// prefix of its own.
    pub async fn start_as(label: &str, mode: Mode) -> anyhow::Result<Self> {
        muster_runtime::telemetry::init_for_tests();
        let mut settings: Settings =
            muster_runtime::service::default_settings::<muster_contacts::Contacts>()?;
        settings.database = muster_testkit::fresh_database(label).await?;
        settings.amqp = muster_testkit::fresh_amqp();
        settings.listen.addr = "127.0.0.1:0".into();
        settings.listen.admin_addr = "127.0.0.1:0".into();
        let app = muster_contacts::build(settings.clone(), mode).await?;
        let port = app.grpc_port().unwrap_or_default();
        let pool = app.pool().clone();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(app.run(shutdown.clone()));
        Ok(Self {
            pool,
            amqp: settings.amqp,
            port,
            secret: settings.auth.token_secret.clone(),
            shutdown,
            running,
            uses_bus: mode.works() || mode.relays(),
            database: settings.database,
        })
    }

    /// A connection and the credential of `tenant`, for any of contacts' services.
    pub async fn connect(&self, tenant: TenantId) -> anyhow::Result<(Channel, Bearer)> {
        let token = Signer::new(&self.secret).mint("test", Some(tenant), Duration::from_secs(600));
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", self.port))?
                .connect()
                .await?;
        Ok((channel, Bearer::new(&token)))
    }

    /// A client acting for `tenant`.
    pub async fn client(&self, tenant: TenantId) -> anyhow::Result<Client> {
        let (channel, bearer) = self.connect(tenant).await?;
        Ok(ContactsServiceClient::with_interceptor(channel, bearer))
    }

    /// Stops the process, then drops its database and its broker topology.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.running.await??;
        self.pool.close().await;
        if self.uses_bus {
            muster_testkit::drop_topology(&self.amqp).await?;
        }
        muster_testkit::drop_database(&self.database).await
    }
}

/// The first page of `job`'s issues (100, in file order).
pub async fn issues(
    client: &mut Client,
    job: &pb::ImportJob,
) -> anyhow::Result<Vec<pb::ImportIssue>> {
    let request = pb::ListImportIssuesRequest {
        import_id: job.id.clone(),
        ..Default::default()
    };
    Ok(client
        .list_import_issues(request)
        .await?
        .into_inner()
        .issues)
}

/// Uploads `csv` under `header` (its size filled in) and waits up to a
/// minute for the import to succeed; a failed import is an error.
pub async fn upload(
    client: &mut Client,
    header: pb::ImportHeader,
    csv: &str,
) -> anyhow::Result<pb::ImportJob> {
    let header = pb::ImportHeader {
        size_bytes: csv.len() as u64,
        ..header
    };
    let parts = vec![
        pb::UploadImportRequest {
            part: Some(pb::upload_import_request::Part::Header(header)),
        },
        pb::UploadImportRequest {
            part: Some(pb::upload_import_request::Part::Chunk(
                csv.as_bytes().to_vec(),
            )),
        },
    ];
    let job = client
        .upload_import(futures::stream::iter(parts))
        .await?
        .into_inner();
    for _ in 0..600 {
        let job = client
            .get_import(pb::GetImportRequest { id: job.id.clone() })
            .await?
            .into_inner();
        if job.state == pb::ImportState::Succeeded as i32 {
            return Ok(job);
        }
        anyhow::ensure!(job.state != pb::ImportState::Failed as i32, "{job:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the import did not finish in a minute")
}
