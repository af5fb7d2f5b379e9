//! Starting a gateway for one test and talking to it.

use crate::signing::SnsSigner;
use muster_gateway::{FormSettings, PublicSettings, ServicesSettings, Settings, WebhookSettings};
use muster_runtime::TenantId;
use muster_runtime::config::{AuthSettings, ListenSettings, TelemetrySettings};
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::fakes::{Call, Upload, spawn_contacts, spawn_messaging};

/// The secret the gateway and the fake services share.
pub const SECRET: &str = "gateway-tests-secret";
/// The token the gateway's webhooks expect in `?token=`.
pub const WEBHOOK_TOKEN: &str = "webhook-tests-token";

/// A running gateway; stops when dropped.
pub struct TestGateway {
    pub address: String,
    pub pool: PgPool,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a gateway with a fresh database in front of `services`.
pub async fn spawn_gateway(services: ServicesSettings) -> TestGateway {
    spawn_gateway_with(services, Vec::new()).await
}

/// Starts a gateway that also fetches SNS certificates under `sns_prefixes`.
pub async fn spawn_gateway_with(
    services: ServicesSettings,
    sns_prefixes: Vec<String>,
) -> TestGateway {
    muster_runtime::telemetry::init_for_tests();
    let database = muster_testkit::fresh_database("gateway")
        .await
        .expect("a test database");
    let settings = Settings {
        database: database.clone(),
        listen: ListenSettings {
            addr: "127.0.0.1:0".into(),
            admin_addr: "127.0.0.1:0".into(),
        },
        telemetry: TelemetrySettings {
            format: "pretty".into(),
            filter: "warn".into(),
            otlp_endpoint: None,
        },
        auth: AuthSettings {
            token_secret: SECRET.into(),
        },
        services,
        public: PublicSettings {
            base_url: "http://127.0.0.1".into(),
        },
        webhooks: WebhookSettings {
            token: WEBHOOK_TOKEN.into(),
            sns_cert_url_prefixes: sns_prefixes,
        },
        forms: FormSettings {
            redis_url: "redis://127.0.0.1:6379".into(),
            prefix: format!("muster:test:forms:{}", muster_testkit::unique()),
            per_ip_per_hour: 20,
        },
    };

    let application = muster_gateway::build(settings)
        .await
        .expect("the gateway starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let shutdown = CancellationToken::new();
    tokio::spawn(application.run(shutdown.clone()));

    let pool = muster_runtime::db::connect(&database)
        .await
        .expect("the test database answers");
    TestGateway {
        address,
        pool,
        http: reqwest::Client::new(),
        shutdown,
    }
}

/// A gateway whose contacts is the fake, messaging stopped; the fake's uploads.
pub async fn gateway_with_contacts() -> (TestGateway, UnboundedReceiver<Upload>) {
    let (contacts_url, uploads) = spawn_contacts().await;
    let services = ServicesSettings {
        contacts_url,
        messaging_url: closed_url().await,
    };
    (spawn_gateway(services).await, uploads)
}

/// A gateway whose messaging is the fake, contacts stopped; the fake's calls.
pub async fn gateway_with_messaging() -> (TestGateway, UnboundedReceiver<Call>) {
    let (messaging_url, calls) = spawn_messaging().await;
    let services = ServicesSettings {
        contacts_url: closed_url().await,
        messaging_url,
    };
    (spawn_gateway(services).await, calls)
}

/// A gateway whose messaging is the fake and which trusts the SNS
/// certificate of the returned signer; the fake's calls.
pub async fn gateway_with_messaging_and_sns() -> (TestGateway, UnboundedReceiver<Call>, SnsSigner) {
    let signer = SnsSigner::start()
        .await
        .expect("openssl makes a test certificate");
    let (messaging_url, calls) = spawn_messaging().await;
    let services = ServicesSettings {
        contacts_url: closed_url().await,
        messaging_url,
    };
    let gateway = spawn_gateway_with(services, vec![signer.url_prefix()]).await;
    (gateway, calls, signer)
}

/// Services at addresses where nothing listens.
pub async fn stopped_services() -> ServicesSettings {
    ServicesSettings {
        contacts_url: closed_url().await,
        messaging_url: closed_url().await,
    }
}

/// A local URL whose port was free a moment ago and is closed now.
pub async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

impl TestGateway {
    /// A new organization and its API key.
    pub async fn tenant(&self) -> (TenantId, String) {
        muster_gateway::create_tenant(&self.pool, "Les Amis du Canal")
            .await
            .unwrap()
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.address))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.address))
    }
}

/// The status and the JSON error body of a response.
pub async fn json_error(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .expect("an error code")
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .expect("an error message")
        .to_owned();
    (status, code, message)
}
