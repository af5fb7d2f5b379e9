//! Layered configuration: compiled-in defaults, then an optional file, then
//! environment variables `MUSTER_<SECTION>__<KEY>`.

use std::path::PathBuf;

use anyhow::Context;
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Loads `T` from `defaults` (TOML), the file named by `MUSTER_CONFIG` if set,
/// and the environment.
pub fn load<T: DeserializeOwned>(defaults: &str) -> anyhow::Result<T> {
    let mut builder = Config::builder().add_source(File::from_str(defaults, FileFormat::Toml));
    if let Some(path) = std::env::var_os("MUSTER_CONFIG").map(PathBuf::from) {
        builder = builder.add_source(File::from(path.clone()).required(true));
    }
    builder
        .add_source(
            Environment::with_prefix("MUSTER")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .context("reading configuration")?
        .try_deserialize()
        .context("configuration is invalid: check MUSTER_CONFIG and MUSTER_* variables")
}

/// The PostgreSQL database of one service.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    /// Apply pending migrations when the service starts.
    pub migrate_on_start: bool,
}

/// The RabbitMQ broker and this deployment's names on it.
#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    pub url: String,
    /// Prepended to every exchange and queue name; tests use a random one.
    pub prefix: String,
    pub prefetch: u16,
    /// Deliveries of one message before it is dead-lettered.
    pub delivery_limit: u32,
    /// Days a dead-lettered message is kept for an operator to inspect or
    /// replay; it may hold personal data, so it is not kept for ever.
    pub dead_letter_days: u32,
}

/// Where a service listens.
#[derive(Debug, Clone, Deserialize)]
pub struct ListenSettings {
    /// gRPC (or HTTP for the gateway); port 0 picks a free port.
    pub addr: String,
    /// `/healthz` and `/readyz`.
    pub admin_addr: String,
}

/// Log and trace output.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// `pretty` for people, `json` for log collectors.
    pub format: String,
    /// An `EnvFilter` directive such as `info,muster=debug`.
    pub filter: String,
    /// OTLP/gRPC collector; traces are exported only when set.
    pub otlp_endpoint: Option<String>,
}

/// Secrets that sign credentials between the gateway and the services.
#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    /// Shared HMAC key for internal credentials; set it from the environment.
    pub token_secret: String,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("token_secret", &"<redacted>")
            .finish()
    }
}

/// The `auth.token_secret` of [`COMMON_DEFAULTS`]: for local development only.
pub const DEVELOPMENT_TOKEN_SECRET: &str = "muster-local-development-secret-change-me";

/// Defaults shared by every service, merged under each service's own.
pub const COMMON_DEFAULTS: &str = r#"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
prefix = ""
prefetch = 64
delivery_limit = 5
dead_letter_days = 30

[telemetry]
format = "pretty"
filter = "info"

[auth]
token_secret = "muster-local-development-secret-change-me"

[privacy]
suppression_key = "muster-local-development-suppression-key"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        database: DatabaseSettings,
    }

    #[test]
    fn an_environment_variable_overrides_a_default() {
        let defaults = r#"
            [database]
            url = "postgres://default"
            max_connections = 1
            migrate_on_start = false
        "#;
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var("MUSTER_DATABASE__MAX_CONNECTIONS", "7") };
        let loaded: Sample = load(defaults).unwrap();
        unsafe { std::env::remove_var("MUSTER_DATABASE__MAX_CONNECTIONS") };
        assert_eq!(loaded.database.max_connections, 7);
        assert_eq!(loaded.database.url, "postgres://default");
    }
}
