//! Whom a public page speaks to and for: the subscription form's pages and
//! the unsubscribe pages name the organization their form or link belongs
//! to, so that a person can tell who is asking, and speak the language the
//! visitor reads ([`language::negotiate`]), else the organization's.

pub mod language;

use axum::http::header::ACCEPT_LANGUAGE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use muster_runtime::TenantId;
use muster_runtime::language::Language;
use sqlx::PgPool;

use crate::tenants::{self, PublicProfile};
use crate::unsubscribe::page::{escape, page_in};

/// The language of pages that cannot tell their organization (an unknown
/// form, a broken link) and whose visitor names none of ours: French, as
/// organizations are unless told otherwise (`tenants.default_country`).
pub const WITHOUT_ORGANIZATION: Language = Language::French;

/// Whom a page speaks to and for.
#[derive(Debug, Clone)]
pub struct Audience {
    pub language: Language,
    /// The organization's name as stored; `None` when it is not known.
    pub organization: Option<String>,
}

impl Audience {
    /// A page about `profile`'s organization, in the language the visitor
    /// reads, else the organization's.
    pub fn of(profile: PublicProfile, accepted: Option<&str>) -> Self {
        let default = Language::for_country(&profile.country);
        Self {
            language: language::negotiate(accepted, default),
            organization: Some(profile.name),
        }
    }

    /// A page that cannot tell its organization.
    pub fn unnamed(accepted: Option<&str>) -> Self {
        Self {
            language: language::negotiate(accepted, WITHOUT_ORGANIZATION),
            organization: None,
        }
    }

    /// A page about `tenant`, found from a link: unnamed when the
    /// organization cannot be read, since the page works without its name.
    pub async fn of_tenant(pool: &PgPool, tenant: TenantId, accepted: Option<&str>) -> Self {
        match tenants::public_profile(pool, tenant).await {
            Ok(Some(profile)) => Self::of(profile, accepted),
            Ok(None) => Self::unnamed(accepted),
            Err(error) => {
                tracing::warn!(
                    %error,
                    tenant_id = %tenant,
                    "could not read the organization's name"
                );
                Self::unnamed(accepted)
            }
        }
    }

    /// The organization's name in HTML, or `None` when it is not known.
    pub fn name(&self) -> Option<String> {
        self.organization.as_deref().map(escape)
    }

    /// `title`, followed by the organization's name when it is known.
    pub fn title(&self, title: &str) -> String {
        match &self.organization {
            Some(name) => format!("{title} – {name}"),
            None => title.to_owned(),
        }
    }

    /// A page of the flow that went as asked (200), in this audience's
    /// language, its title followed by the organization's name.
    pub fn page(&self, title: &str, body: &str) -> Response {
        page_in(self.language, StatusCode::OK, &self.title(title), body)
    }
}

/// The visitor's `Accept-Language`, if it is text.
pub fn accepted(headers: &HeaderMap) -> Option<&str> {
    headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok())
}
