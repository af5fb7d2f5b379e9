//! Start-up: the database, the listeners, the routes, and the serve loop.

use std::future::IntoFuture;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware;
use axum::routing::get;
use muster_runtime::auth::Signer;
use muster_runtime::config::DatabaseSettings;
use muster_runtime::db::{self, Migration};
use muster_runtime::{ApiError, admin};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::HttpError;
use crate::settings::{Settings, WebhookSettings};
use crate::upstream::Upstreams;
use crate::{auth, subscribe, unsubscribe, v1, webhooks};

/// The gateway's schema, applied in order.
pub const MIGRATIONS: &[Migration] = muster_runtime::migrations![
    1 => "0001_tenants.sql",
    2 => "0002_default_country.sql",
    3 => "0003_webhook_signing.sql",
];

/// How long requests in flight may run on after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub upstreams: Upstreams,
    pub webhooks: WebhookSettings,
    pub sns: webhooks::SnsVerifier,
    pub forms: subscribe::FormLimiter,
}

/// A gateway bound to its ports, ready to serve.
pub struct Application {
    http: TcpListener,
    admin: TcpListener,
    pool: PgPool,
    router: Router,
}

/// Connects the database, migrates it when configured, and binds the listeners.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let pool = db::connect(&settings.database).await?;
    if settings.database.migrate_on_start {
        db::migrate(&pool, MIGRATIONS)
            .await
            .context("migrating the gateway database")?;
    }
    let upstreams =
        Upstreams::connect_lazy(&settings.services, Signer::new(&settings.auth.token_secret))?;

    let http = TcpListener::bind(&settings.listen.addr)
        .await
        .with_context(|| format!("binding listen.addr {}", settings.listen.addr))?;
    let admin = TcpListener::bind(&settings.listen.admin_addr)
        .await
        .with_context(|| format!("binding listen.admin_addr {}", settings.listen.admin_addr))?;

    let sns = webhooks::SnsVerifier::new(settings.webhooks.sns_cert_url_prefixes.clone())
        .context("preparing the SNS certificate fetcher")?;
    let router = router(AppState {
        pool: pool.clone(),
        upstreams,
        webhooks: settings.webhooks.clone(),
        sns,
        forms: subscribe::FormLimiter::new(&settings.forms)?,
    });
    Ok(Application {
        http,
        admin,
        pool,
        router,
    })
}

/// Applies the gateway's pending migrations to the database of `settings`.
pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let pool = db::connect(settings).await?;
    db::migrate(&pool, MIGRATIONS)
        .await
        .context("migrating the gateway database")?;
    pool.close().await;
    Ok(())
}

fn router(state: AppState) -> Router {
    let api_key = middleware::from_fn_with_state(state.clone(), auth::require_api_key);
    Router::new()
        .merge(v1::router().route_layer(api_key))
        .merge(unsubscribe::router())
        .merge(subscribe::router())
        .merge(webhooks::router())
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { HttpError::from(ApiError::not_found("route")) })
        .with_state(state)
}

impl Application {
    /// The port of the REST listener.
    pub fn port(&self) -> u16 {
        self.http
            .local_addr()
            .map(|addr| addr.port())
            .unwrap_or_default()
    }

    /// The port of the `/healthz` `/readyz` listener.
    pub fn admin_port(&self) -> u16 {
        self.admin
            .local_addr()
            .map(|addr| addr.port())
            .unwrap_or_default()
    }

    /// Serves until `shutdown`, then lets requests in flight finish for a grace period.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let admin = tokio::spawn(admin::serve(
            self.admin,
            self.pool.clone(),
            shutdown.clone(),
        ));
        // The peer address is the evidence of a public consent without a proxy.
        let service = self
            .router
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(self.http, service)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        let grace_over = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };

        tokio::select! {
            served = server => served.context("the HTTP server failed")?,
            () = grace_over => tracing::warn!("requests still running after the grace; dropped"),
        }
        let _ = admin.await;
        self.pool.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    muster_runtime::test_migrations_listed!(super::MIGRATIONS);
}
