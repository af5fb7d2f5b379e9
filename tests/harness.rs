//! Starts contacts and messaging in this process against real PostgreSQL,
//! RabbitMQ and an `smtp-sink`, each test with its own databases and queue
//! prefix, and drives them through their gRPC APIs.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use muster_proto::contacts::v1 as contacts;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_proto::messaging::v1 as messaging;
use muster_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use muster_runtime::TenantId;
use muster_runtime::auth::{Bearer, Signer};
use muster_runtime::config::AmqpSettings;
use muster_runtime::service::default_settings;
use muster_testkit::SmtpSink;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub mod windows;

pub use muster_testkit::ReceivedMessage;

/// A contacts client acting for one organization.
pub type Contacts = ContactsServiceClient<InterceptedService<Channel, Bearer>>;
/// A messaging client acting for one organization.
pub type Messaging = MessagingServiceClient<InterceptedService<Channel, Bearer>>;

/// The shared supporter files shipped in `data/contacts/`.
pub fn data_file(name: &str) -> std::path::PathBuf {
    muster_testkit::repo_root().join("data/contacts").join(name)
}

/// A gateway started by [`Stack::start_gateway`].
pub struct StartedGateway {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub database: muster_runtime::config::DatabaseSettings,
}

/// A running contacts + messaging pair with its own databases, queues and SMTP sink.
pub struct Stack {
    pub signer: Signer,
    pub sink: SmtpSink,
    pub contacts_pool: PgPool,
    pub messaging_pool: PgPool,
    pub amqp: AmqpSettings,
    pub messaging_settings: muster_messaging::Settings,
    pub contacts_settings: muster_contacts::Settings,
    contacts_port: u16,
    messaging_port: u16,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Stack {
    /// Starts contacts and messaging, each in all-in-one mode.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(muster_messaging::Mode::All).await
    }

    /// Starts contacts (all-in-one) and messaging in `mode`; tests add workers.
    pub async fn start_with(messaging_mode: muster_messaging::Mode) -> anyhow::Result<Self> {
        Self::start_inner(messaging_mode, None).await
    }

    /// Starts both all-in-one, messaging sending to the SMTP server on
    /// 127.0.0.1:`smtp_port` instead of the stack's sink.
    pub async fn start_with_smtp(smtp_port: u16) -> anyhow::Result<Self> {
        Self::start_inner(muster_messaging::Mode::All, Some(smtp_port)).await
    }

    async fn start_inner(
        messaging_mode: muster_messaging::Mode,
        smtp_port: Option<u16>,
    ) -> anyhow::Result<Self> {
        muster_runtime::telemetry::init_for_tests();
        let amqp = muster_testkit::fresh_amqp();
        let sink = SmtpSink::start().await?;
        let shutdown = CancellationToken::new();

        let mut contacts_settings = default_settings::<muster_contacts::Contacts>()?;
        contacts_settings.database = muster_testkit::fresh_database("contacts").await?;
        contacts_settings.amqp = amqp.clone();
        contacts_settings.listen.addr = "127.0.0.1:0".into();
        contacts_settings.listen.admin_addr = "127.0.0.1:0".into();
        let contacts =
            muster_contacts::build(contacts_settings.clone(), muster_contacts::Mode::All).await?;
        let contacts_port = contacts.grpc_port().context("contacts serves gRPC")?;
        let contacts_pool = contacts.pool().clone();

        let mut messaging_settings = default_settings::<muster_messaging::Messaging>()?;
        messaging_settings.database = muster_testkit::fresh_database("messaging").await?;
        messaging_settings.amqp = amqp.clone();
        messaging_settings.listen.addr = "127.0.0.1:0".into();
        messaging_settings.listen.admin_addr = "127.0.0.1:0".into();
        messaging_settings.services.contacts_url = format!("http://127.0.0.1:{contacts_port}");
        messaging_settings.smtp.port = smtp_port.unwrap_or(sink.port());
        messaging_settings.sender.stale_claim_secs = 5;
        messaging_settings.sender.stall_after_secs = 10;
        messaging_settings.ratelimit.prefix = format!("muster:t:{}:", muster_testkit::unique());
        let messaging = muster_messaging::build(messaging_settings.clone(), messaging_mode).await?;
        let messaging_port = messaging.grpc_port().unwrap_or_default();
        let messaging_pool = messaging.pool().clone();

        let tasks = vec![
            tokio::spawn(contacts.run(shutdown.clone())),
            tokio::spawn(messaging.run(shutdown.clone())),
        ];
        Ok(Self {
            signer: Signer::new(&messaging_settings.auth.token_secret),
            sink,
            contacts_pool,
            messaging_pool,
            amqp,
            messaging_settings,
            contacts_settings,
            contacts_port,
            messaging_port,
            shutdown,
            tasks,
        })
    }

    /// Starts one more messaging process in `mode` on the same database and
    /// queues; aborting the handle kills it without draining, like a crash.
    pub async fn spawn_messaging(
        &self,
        mode: muster_messaging::Mode,
    ) -> anyhow::Result<(JoinHandle<anyhow::Result<()>>, CancellationToken)> {
        let mut settings = self.messaging_settings.clone();
        settings.listen.addr = "127.0.0.1:0".into();
        settings.database.migrate_on_start = false;
        let app = muster_messaging::build(settings, mode).await?;
        let stop = CancellationToken::new();
        Ok((tokio::spawn(app.run(stop.clone())), stop))
    }

    /// Starts a gateway in front of the stack, with a database of its own,
    /// until `shutdown`; `adjust` changes its settings first.
    pub async fn start_gateway(
        &self,
        shutdown: &CancellationToken,
        adjust: impl FnOnce(&mut muster_gateway::Settings),
    ) -> anyhow::Result<StartedGateway> {
        let mut settings = muster_gateway::Settings::load()?;
        settings.database = muster_testkit::fresh_database("gateway").await?;
        settings.listen.addr = "127.0.0.1:0".into();
        settings.listen.admin_addr = "127.0.0.1:0".into();
        settings.services.contacts_url = self.contacts_endpoint();
        settings.services.messaging_url = self.messaging_endpoint();
        adjust(&mut settings);
        let database = settings.database.clone();
        let app = muster_gateway::build(settings).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run(shutdown.clone()));
        Ok(StartedGateway { base, database })
    }

    /// The contacts gRPC address.
    pub fn contacts_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.contacts_port)
    }

    /// The messaging gRPC address.
    pub fn messaging_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.messaging_port)
    }

    /// A contacts client for `tenant`.
    pub async fn contacts(&self, tenant: TenantId) -> anyhow::Result<Contacts> {
        let channel = channel(self.contacts_port).await?;
        let token = self
            .signer
            .mint("test", Some(tenant), Duration::from_secs(3600));
        Ok(ContactsServiceClient::with_interceptor(
            channel,
            Bearer::new(&token),
        ))
    }

    /// A messaging client for `tenant`.
    pub async fn messaging(&self, tenant: TenantId) -> anyhow::Result<Messaging> {
        let channel = channel(self.messaging_port).await?;
        let token = self
            .signer
            .mint("test", Some(tenant), Duration::from_secs(3600));
        Ok(MessagingServiceClient::with_interceptor(
            channel,
            Bearer::new(&token),
        ))
    }

    /// A messaging client with a tenant-less service credential (as the gateway's).
    pub async fn messaging_as_service(&self) -> anyhow::Result<Messaging> {
        let channel = channel(self.messaging_port).await?;
        let token = self.signer.mint("gateway", None, Duration::from_secs(3600));
        Ok(MessagingServiceClient::with_interceptor(
            channel,
            Bearer::new(&token),
        ))
    }

    /// Uploads `path` and waits for the import to finish.
    pub async fn import(
        &self,
        tenant: TenantId,
        path: &Path,
        preset: contacts::ImportPreset,
    ) -> anyhow::Result<contacts::ImportJob> {
        self.upload(tenant, path, preset, None).await
    }

    /// Uploads `path` with explicit columns and waits for the import to finish.
    pub async fn import_custom(
        &self,
        tenant: TenantId,
        path: &Path,
        mapping: contacts::ColumnMapping,
    ) -> anyhow::Result<contacts::ImportJob> {
        self.upload(tenant, path, contacts::ImportPreset::Custom, Some(mapping))
            .await
    }

    async fn upload(
        &self,
        tenant: TenantId,
        path: &Path,
        preset: contacts::ImportPreset,
        mapping: Option<contacts::ColumnMapping>,
    ) -> anyhow::Result<contacts::ImportJob> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let header = contacts::ImportHeader {
            file_name: name,
            preset: preset as i32,
            mapping,
            size_bytes: bytes.len() as u64,
            ..Default::default()
        };
        let mut parts = vec![contacts::UploadImportRequest {
            part: Some(contacts::upload_import_request::Part::Header(header)),
        }];
        for chunk in bytes.chunks(64 * 1024) {
            parts.push(contacts::UploadImportRequest {
                part: Some(contacts::upload_import_request::Part::Chunk(chunk.to_vec())),
            });
        }
        let mut client = self.contacts(tenant).await?;
        let job = client
            .upload_import(futures::stream::iter(parts))
            .await?
            .into_inner();
        self.wait_import(tenant, &job.id).await
    }

    /// Waits for an import to succeed or fail (two minutes at most).
    pub async fn wait_import(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> anyhow::Result<contacts::ImportJob> {
        let mut client = self.contacts(tenant).await?;
        for _ in 0..1200 {
            let job = client
                .get_import(contacts::GetImportRequest { id: id.into() })
                .await?
                .into_inner();
            let state = contacts::ImportState::try_from(job.state)?;
            if matches!(
                state,
                contacts::ImportState::Succeeded | contacts::ImportState::Failed
            ) {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("import {id} did not finish in two minutes")
    }

    /// Creates a template and a campaign to `segment`, and launches it.
    pub async fn launch_campaign(
        &self,
        tenant: TenantId,
        segment: contacts::SegmentFilter,
    ) -> anyhow::Result<messaging::Campaign> {
        let campaign = self.create_campaign(tenant, segment).await?;
        let mut client = self.messaging(tenant).await?;
        Ok(client
            .launch_campaign(messaging::CampaignActionRequest { id: campaign.id })
            .await?
            .into_inner())
    }

    /// Creates a template and a draft campaign to `segment`.
    pub async fn create_campaign(
        &self,
        tenant: TenantId,
        segment: contacts::SegmentFilter,
    ) -> anyhow::Result<messaging::Campaign> {
        self.create_campaign_from(tenant, segment, "Muster").await
    }

    /// Creates a template and a draft campaign to `segment` from `from_name`.
    pub async fn create_campaign_from(
        &self,
        tenant: TenantId,
        segment: contacts::SegmentFilter,
        from_name: &str,
    ) -> anyhow::Result<messaging::Campaign> {
        let mut client = self.messaging(tenant).await?;
        let template = client
            .create_template(messaging::CreateTemplateRequest {
                template: Some(messaging::Template {
                    name: "Appel".into(),
                    subject: "Rendez-vous à {{ city }}, {{ first_name }} !".into(),
                    text_body: "Bonjour {{ first_name }},\nRejoignez-nous.\n".into(),
                    html_body: "<p>Bonjour {{ first_name }},</p><p>Rejoignez-nous.</p>".into(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner();
        Ok(client
            .create_campaign(messaging::CreateCampaignRequest {
                campaign: Some(messaging::Campaign {
                    name: "Appel".into(),
                    template_id: template.id,
                    segment: Some(segment),
                    from_name: from_name.into(),
                    from_email: "equipe@example.org".into(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner())
    }

    /// Polls the campaign until `done` holds (three minutes at most).
    pub async fn wait_campaign(
        &self,
        tenant: TenantId,
        id: &str,
        done: impl Fn(&messaging::Campaign) -> bool,
    ) -> anyhow::Result<messaging::Campaign> {
        let mut client = self.messaging(tenant).await?;
        for _ in 0..1800 {
            let campaign = client
                .get_campaign(messaging::GetCampaignRequest { id: id.into() })
                .await?
                .into_inner();
            if done(&campaign) {
                return Ok(campaign);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("campaign {id} did not reach the expected state in three minutes")
    }

    /// Waits until the campaign is completed.
    pub async fn wait_completed(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> anyhow::Result<messaging::Campaign> {
        self.wait_campaign(tenant, id, |c| {
            c.state == messaging::CampaignState::Completed as i32
        })
        .await
    }

    /// Received messages grouped by envelope recipient (lowercased).
    pub fn received_by_recipient(&self) -> anyhow::Result<HashMap<String, Vec<ReceivedMessage>>> {
        let mut by_recipient: HashMap<String, Vec<ReceivedMessage>> = HashMap::new();
        for message in self.sink.messages()? {
            for recipient in &message.recipients {
                by_recipient
                    .entry(recipient.to_lowercase())
                    .or_default()
                    .push(message.clone());
            }
        }
        Ok(by_recipient)
    }

    /// Stops both services, draining in-flight work, then removes this
    /// test's databases, queues and received mail.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await??;
        }
        self.contacts_pool.close().await;
        self.messaging_pool.close().await;
        muster_testkit::drop_database(&self.contacts_settings.database).await?;
        muster_testkit::drop_database(&self.messaging_settings.database).await?;
        muster_testkit::drop_topology(&self.amqp).await?;
        let dir = self.sink.dir().to_owned();
        self.sink.stop().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}

async fn channel(port: u16) -> anyhow::Result<Channel> {
    Ok(
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .connect()
            .await?,
    )
}
