//! The gateway: Muster's only public entry point. It owns organizations and
//! their API keys, serves REST/JSON over the contacts and messaging gRPC
//! services (calling them with a short-lived credential for the caller's
//! organization), and serves the public unsubscribe pages and the webhooks
//! through which providers and mail relays report bounces and complaints.

mod audience;
mod auth;
mod error;
mod extract;
mod settings;
mod startup;
mod subscribe;
mod tenants;
mod unsubscribe;
mod upstream;
mod v1;
mod webhooks;

pub use error::{HttpError, classify};
pub use settings::{FormSettings, PublicSettings, ServicesSettings, Settings, WebhookSettings};
pub use startup::{Application, MIGRATIONS, build, migrate};
pub use tenants::{
    ApiKey, ApiKeyId, Organization, country_code, create_api_key, create_tenant,
    organization_for_key, revoke_api_key, set_default_country, set_mailgun_signing_key,
    tenant_for_key,
};
