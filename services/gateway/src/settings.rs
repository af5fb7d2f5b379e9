//! The gateway's configuration: compiled-in defaults, then `MUSTER_CONFIG`,
//! then `MUSTER_*` environment variables.

use muster_runtime::config::{
    self, AuthSettings, COMMON_DEFAULTS, DatabaseSettings, ListenSettings, TelemetrySettings,
};
use serde::Deserialize;

const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/muster_gateway"
max_connections = 10
migrate_on_start = true

[listen]
addr = "127.0.0.1:8080"
admin_addr = "127.0.0.1:8081"

[services]
contacts_url = "http://127.0.0.1:7151"
messaging_url = "http://127.0.0.1:7152"

[public]
base_url = "http://127.0.0.1:8080"

[webhooks]
token = ""
sns_cert_url_prefixes = []

[forms]
redis_url = "redis://127.0.0.1:6379"
prefix = "muster:forms"
per_ip_per_hour = 20
"#;

/// Everything the gateway reads at start-up.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub listen: ListenSettings,
    pub telemetry: TelemetrySettings,
    pub auth: AuthSettings,
    pub services: ServicesSettings,
    pub public: PublicSettings,
    pub webhooks: WebhookSettings,
    pub forms: FormSettings,
}

/// The public subscription form's limit per visitor address.
#[derive(Debug, Clone, Deserialize)]
pub struct FormSettings {
    /// Where the counts live, shared by every gateway replica.
    pub redis_url: String,
    /// Prefix of every Redis key the counter writes.
    pub prefix: String,
    /// Subscriptions one IP address may send one organization per hour
    /// (0: no limit).
    pub per_ip_per_hour: u32,
}

/// Where the gRPC services behind the gateway listen.
#[derive(Debug, Clone, Deserialize)]
pub struct ServicesSettings {
    pub contacts_url: String,
    pub messaging_url: String,
}

/// How the outside world reaches the gateway.
#[derive(Debug, Clone, Deserialize)]
pub struct PublicSettings {
    /// The public origin of the gateway, e.g. `https://act.example.org`.
    pub base_url: String,
}

/// The provider webhooks under `/webhooks/`.
#[derive(Clone, Deserialize)]
pub struct WebhookSettings {
    /// The shared secret a provider puts in the URL query (`?token=`); set it
    /// from the environment. Empty turns the webhooks off.
    pub token: String,
    /// For tests only: URL prefixes (ending in `/`) an SNS `SigningCertURL`
    /// may start with besides `https://sns.<region>.amazonaws.com/`, such as
    /// a local server's `http://127.0.0.1:PORT/`. Leave empty in production.
    #[serde(default)]
    pub sns_cert_url_prefixes: Vec<String>,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("token", &"<redacted>")
            .field("sns_cert_url_prefixes", &self.sns_cert_url_prefixes)
            .finish()
    }
}

impl Settings {
    /// Loads the defaults, the file named by `MUSTER_CONFIG` and the environment.
    pub fn load() -> anyhow::Result<Self> {
        config::load(&format!("{COMMON_DEFAULTS}\n{DEFAULTS}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_point_at_the_local_services() {
        let settings: Settings = config::load(&format!("{COMMON_DEFAULTS}\n{DEFAULTS}")).unwrap();
        assert_eq!(settings.listen.addr, "127.0.0.1:8080");
        assert_eq!(settings.services.contacts_url, "http://127.0.0.1:7151");
        assert_eq!(settings.services.messaging_url, "http://127.0.0.1:7152");
    }

    #[test]
    fn webhooks_are_off_by_default_and_their_token_stays_out_of_logs() {
        let mut settings: Settings =
            config::load(&format!("{COMMON_DEFAULTS}\n{DEFAULTS}")).unwrap();
        assert_eq!(settings.webhooks.token, "");
        assert!(settings.webhooks.sns_cert_url_prefixes.is_empty());
        settings.webhooks.token = "s3cret-hook".into();
        assert!(!format!("{settings:?}").contains("s3cret-hook"));
    }
}
