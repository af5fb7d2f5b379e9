//! The gateway: Muster's only public entry point. It owns organizations and
//! their API keys, serves REST/JSON over the contacts and messaging gRPC
//! services (calling them with a short-lived credential for the caller's
//! organization), and serves the public unsubscribe pages.

mod auth;
mod error;
mod extract;
mod settings;
mod startup;
mod tenants;
mod unsubscribe;
mod upstream;
mod v1;

pub use error::{HttpError, classify};
pub use settings::{PublicSettings, ServicesSettings, Settings};
pub use startup::{Application, MIGRATIONS, build, migrate};
pub use tenants::{
    ApiKey, ApiKeyId, create_api_key, create_tenant, revoke_api_key, tenant_for_key,
};
