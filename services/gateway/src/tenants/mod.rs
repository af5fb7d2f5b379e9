//! Organizations and the API keys their REST clients present.

mod api_key;

use anyhow::Context;
use muster_runtime::TenantId;
use sqlx::PgPool;

pub use api_key::ApiKey;

muster_runtime::typed_id!(
    /// An API key's identifier: names the key without revealing it.
    ApiKeyId
);

const TENANT_NAME_MAX_CHARS: usize = 200;

/// Creates an organization and its first API key (named "default"); returns
/// the organization's id and the key, which is not stored and cannot be shown again.
pub async fn create_tenant(pool: &PgPool, name: &str) -> anyhow::Result<(TenantId, String)> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "an organization needs a name");
    anyhow::ensure!(
        name.chars().count() <= TENANT_NAME_MAX_CHARS,
        "an organization name has at most {TENANT_NAME_MAX_CHARS} characters"
    );
    // The name is shown on public pages and in e-mail subjects: one line.
    anyhow::ensure!(
        !name.chars().any(char::is_control),
        "an organization name is one line of text: remove line breaks and tabs"
    );

    let tenant = TenantId::new();
    let mut tx = pool.begin().await.context("starting a transaction")?;
    sqlx::query(include_str!("sql/insert_tenant.sql"))
        .bind(tenant)
        .bind(name)
        .execute(&mut *tx)
        .await
        .context("inserting the organization")?;
    let (_, key) = insert_key(&mut tx, tenant, "default").await?;
    tx.commit()
        .await
        .context("committing the new organization")?;

    tracing::info!(tenant_id = %tenant, "organization created");
    Ok((tenant, key.expose().to_owned()))
}

/// Creates another API key for `tenant`; the key is shown once and not stored.
pub async fn create_api_key(
    pool: &PgPool,
    tenant: TenantId,
    name: &str,
) -> anyhow::Result<(ApiKeyId, ApiKey)> {
    let mut conn = pool.acquire().await.context("acquiring a connection")?;
    insert_key(&mut conn, tenant, name).await
}

async fn insert_key(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    name: &str,
) -> anyhow::Result<(ApiKeyId, ApiKey)> {
    let id = ApiKeyId::new();
    let key = ApiKey::generate();
    sqlx::query(include_str!("sql/insert_api_key.sql"))
        .bind(id)
        .bind(tenant)
        .bind(name)
        .bind(key.hash())
        .execute(conn)
        .await
        .context("inserting the API key")?;
    Ok((id, key))
}

/// Revokes `tenant`'s key `id`; returns whether a live key was revoked.
pub async fn revoke_api_key(pool: &PgPool, tenant: TenantId, id: ApiKeyId) -> anyhow::Result<bool> {
    let revoked = sqlx::query(include_str!("sql/revoke_api_key.sql"))
        .bind(id)
        .bind(tenant)
        .execute(pool)
        .await
        .context("revoking the API key")?;
    Ok(revoked.rows_affected() == 1)
}

/// The organization of a live (not revoked) key.
pub async fn tenant_for_key(pool: &PgPool, key: &ApiKey) -> sqlx::Result<Option<TenantId>> {
    Ok(organization_for_key(pool, key)
        .await?
        .map(|organization| organization.id))
}

/// The organization a live key belongs to, with the settings requests need.
pub async fn organization_for_key(
    pool: &PgPool,
    key: &ApiKey,
) -> sqlx::Result<Option<Organization>> {
    let found: Option<(TenantId, String, String)> =
        sqlx::query_as(include_str!("sql/tenant_for_key.sql"))
            .bind(key.hash())
            .fetch_optional(pool)
            .await?;
    Ok(found.map(|(id, name, default_country)| Organization {
        id,
        name,
        default_country,
    }))
}

/// An organization as the gateway serves it.
#[derive(Debug, Clone)]
pub struct Organization {
    pub id: TenantId,
    /// As stored; named in the e-mails sent on its behalf.
    pub name: String,
    /// ISO 3166-1 alpha-2: where rows without a country are read to be.
    pub default_country: String,
}

/// What the public pages of an organization's forms show of it.
#[derive(Debug, Clone)]
pub struct PublicProfile {
    /// As stored: escape it before putting it in HTML.
    pub name: String,
    /// ISO 3166-1 alpha-2: the country its default language follows.
    pub country: String,
}

/// The public profile of `tenant`, if this gateway serves it.
pub async fn public_profile(
    pool: &PgPool,
    tenant: TenantId,
) -> sqlx::Result<Option<PublicProfile>> {
    let found: Option<(String, String)> =
        sqlx::query_as("SELECT name, default_country FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(pool)
            .await?;
    Ok(found.map(|(name, country)| PublicProfile { name, country }))
}

/// A country code as stored: two ASCII letters, uppercased.
pub fn country_code(raw: &str) -> anyhow::Result<String> {
    let country = raw.trim().to_ascii_uppercase();
    anyhow::ensure!(
        country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
        "{raw:?} is not a two-letter country code (ISO 3166-1), such as FR or BE"
    );
    Ok(country)
}

/// Sets the country `tenant` works in (ISO 3166-1 alpha-2, e.g. `BE`).
pub async fn set_default_country(
    pool: &PgPool,
    tenant: TenantId,
    country: &str,
) -> anyhow::Result<()> {
    let country = country_code(country)?;
    sqlx::query("UPDATE tenants SET default_country = $2 WHERE id = $1")
        .bind(tenant)
        .bind(&country)
        .execute(pool)
        .await
        .context("setting the organization's country")?;
    Ok(())
}

/// Sets the key Mailgun signs `tenant`'s webhooks with (the account's HTTP
/// webhook signing key, from Mailgun's dashboard); returns whether the
/// organization exists.
pub async fn set_mailgun_signing_key(
    pool: &PgPool,
    tenant: TenantId,
    key: &str,
) -> anyhow::Result<bool> {
    let key = key.trim();
    anyhow::ensure!(
        !key.is_empty(),
        "the Mailgun webhook signing key is empty: copy it from Mailgun's dashboard"
    );
    let updated = sqlx::query("UPDATE tenants SET mailgun_signing_key = $2 WHERE id = $1")
        .bind(tenant)
        .bind(key)
        .execute(pool)
        .await
        .context("storing the Mailgun signing key")?;
    Ok(updated.rows_affected() == 1)
}

/// The key Mailgun signs `tenant`'s webhooks with, if one is set.
pub async fn mailgun_signing_key(pool: &PgPool, tenant: TenantId) -> sqlx::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT mailgun_signing_key FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(pool)
            .await?
            .flatten(),
    )
}
