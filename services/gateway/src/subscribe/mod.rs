//! Public double opt-in: `POST /subscribe` takes a form subscription (no API
//! key; the form names its organization) and contacts records it pending;
//! the e-mail messaging then sends links to `/confirm/{token}`, where a GET
//! only shows a button (mail scanners follow links) and the POST confirms.
//!
//! The pages speak French or English and name the organization
//! ([`crate::audience`]); the subscription carries both to contacts, so
//! that the confirmation e-mail reads in the page's language and says who
//! asks.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use muster_proto::contacts::v1::{ConfirmConsentRequest, SubscribeRequest};
use muster_runtime::TenantId;
use muster_runtime::confirmation::Unusable;
use muster_runtime::language::Language;
use serde::Deserialize;
use tonic::{Code, Status};
use uuid::Uuid;

mod limit;
mod pages;

pub use limit::FormLimiter;

use self::pages::Refusal;
use crate::audience::{Audience, accepted};
use crate::startup::AppState;
use crate::tenants;

/// Form bodies are small; anything larger is not a subscription.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Tokens are short; a longer one was not written by messaging.
const MAX_TOKEN_CHARS: usize = 1024;

/// The public subscription routes; no API key.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/subscribe", post(subscribe))
        .route("/confirm/{token}", get(show).post(confirm))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// The fields of a subscription form.
#[derive(Debug, Deserialize)]
pub struct SubscribeForm {
    /// The organization's id.
    organization: String,
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    purpose: String,
    /// The version of the notice the form shows.
    #[serde(default)]
    notice: String,
}

/// Where a public request came from, for the consent's evidence: the peer,
/// or, when the peer is a proxy, the address it forwards for (see
/// [`client_ip`]).
pub struct Client {
    ip: String,
    user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let forwarded = header("x-forwarded-for");
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        Ok(Self {
            ip: client_ip(peer, forwarded.as_deref())
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            user_agent,
        })
    }
}

/// The address a request came from. `X-Forwarded-For` is believed only as
/// far as proxies wrote it: from the peer back, each hop on this host or a
/// private network (a load balancer, an ingress) passes the word to the hop
/// before it, and the first public address met is the client's. A client on
/// the internet cannot name another address by sending the header itself.
fn client_ip(peer: Option<IpAddr>, forwarded: Option<&str>) -> Option<IpAddr> {
    let mut client = peer?;
    if !is_proxy(client) {
        return Some(client);
    }
    for hop in forwarded.unwrap_or_default().rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_proxy(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

/// Whether `ip` may be a proxy of the organization's: loopback, private,
/// link-local or shared (carrier-grade NAT) addresses, never public ones.
fn is_proxy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let shared = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64;
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || shared
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_proxy(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

impl Client {
    fn evidence(self) -> std::collections::HashMap<String, String> {
        [("ip", self.ip), ("user_agent", self.user_agent)]
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| (key.to_owned(), value))
            .collect()
    }
}

/// `POST /subscribe`: records the subscription pending and answers the same
/// page whether the address was known or not.
#[tracing::instrument(name = "gateway.subscribe", skip_all)]
async fn subscribe(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SubscribeForm>,
) -> Response {
    let accepted = accepted(&headers);
    let unknown = |detail| {
        pages::refused(
            Audience::unnamed(accepted).language,
            Refusal::Organization(detail),
        )
    };
    let Ok(tenant) = Uuid::parse_str(form.organization.trim()) else {
        return unknown("organization: not an organization id; check the form's address");
    };
    let tenant = TenantId::from_uuid(tenant);
    let audience = match tenants::public_profile(&state.pool, tenant).await {
        Ok(Some(profile)) => Audience::of(profile, accepted),
        Ok(None) => return unknown("organization: no such organization; check the form"),
        Err(error) => {
            tracing::error!(%error, "could not read the organizations");
            return pages::unavailable(Audience::unnamed(accepted).language);
        }
    };
    if !state.forms.admit(tenant, &client.ip).await {
        tracing::warn!(tenant_id = %tenant, "form subscriptions over the hourly limit refused");
        return pages::too_many(audience.language);
    }
    let request = SubscribeRequest {
        email: form.email,
        first_name: form.first_name,
        last_name: form.last_name,
        purpose: form.purpose,
        notice: form.notice,
        evidence: client.evidence(),
        organization_name: audience.organization.clone().unwrap_or_default(),
        language: audience.language.tag().to_owned(),
    };
    match state.upstreams.consent_for(tenant).subscribe(request).await {
        Ok(_) => pages::check_inbox(&audience),
        Err(status) => failure(audience.language, &status),
    }
}

/// `GET /confirm/{token}`: a button to confirm; nothing changes on a GET.
#[tracing::instrument(name = "gateway.confirm.show", skip_all)]
async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let accepted = accepted(&headers);
    match read_token(&state, &token) {
        Ok(tenant) => {
            pages::confirm_button(&Audience::of_tenant(&state.pool, tenant, accepted).await)
        }
        Err(page) => page(Audience::unnamed(accepted).language),
    }
}

/// `POST /confirm/{token}`: confirms; a second time says it is done.
#[tracing::instrument(name = "gateway.confirm", skip_all)]
async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    client: Client,
) -> Response {
    let accepted = accepted(&headers);
    let audience = match read_token(&state, &token) {
        Ok(tenant) => Audience::of_tenant(&state.pool, tenant, accepted).await,
        Err(page) => return page(Audience::unnamed(accepted).language),
    };
    let request = ConfirmConsentRequest {
        token,
        evidence: client.evidence(),
    };
    match state
        .upstreams
        .public_consent()
        .confirm_consent(request)
        .await
    {
        Ok(_) => pages::confirmed(&audience),
        Err(status) => failure(audience.language, &status),
    }
}

/// The organization a confirmation link is for, or the page that says why
/// the link cannot be used. Contacts reads the token again to confirm.
fn read_token(state: &AppState, token: &str) -> Result<TenantId, fn(Language) -> Response> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(pages::invalid_link);
    }
    match state
        .upstreams
        .confirmation_tokens()
        .read(token, Utc::now())
    {
        Ok(confirmation) => Ok(confirmation.tenant),
        Err(Unusable::Expired) => Err(pages::expired),
        Err(Unusable::Invalid) => Err(pages::invalid_link),
    }
}

/// A page for a contacts error: the visitor's input, a stale link, or ours.
fn failure(language: Language, status: &Status) -> Response {
    let message = status.message();
    match status.code() {
        Code::InvalidArgument if message.starts_with("token") => pages::invalid_link(language),
        Code::InvalidArgument if message.starts_with("email") => {
            pages::refused(language, Refusal::Email)
        }
        Code::InvalidArgument => pages::refused(language, Refusal::Field(message)),
        Code::FailedPrecondition => pages::nothing_to_confirm(language, message),
        Code::Unavailable => pages::unavailable(language),
        code => {
            tracing::error!(?code, error = message, "public subscription failed");
            pages::went_wrong(language)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_on_the_internet_cannot_name_another_address() {
        let public = Some(ip("203.0.113.9"));
        assert_eq!(client_ip(public, Some("198.51.100.4")), public);
        assert_eq!(client_ip(public, None), public);
    }

    #[test]
    fn a_proxy_passes_on_the_address_it_forwards_for() {
        let ingress = Some(ip("10.2.0.7"));
        assert_eq!(
            client_ip(ingress, Some("198.51.100.4")),
            Some(ip("198.51.100.4"))
        );
        // The client sent a header of its own; the proxy appended the truth.
        assert_eq!(
            client_ip(ingress, Some("1.2.3.4, 198.51.100.4, 10.0.0.3")),
            Some(ip("198.51.100.4"))
        );
        assert_eq!(
            client_ip(Some(ip("::1")), Some("2001:db8::5")),
            Some(ip("2001:db8::5"))
        );
        assert_eq!(
            client_ip(Some(ip("::ffff:127.0.0.1")), Some("198.51.100.4")),
            Some(ip("198.51.100.4"))
        );
        assert_eq!(
            client_ip(Some(ip("100.64.3.1")), Some("198.51.100.4")),
            Some(ip("198.51.100.4")),
            "a shared (carrier-grade NAT) address is a proxy's"
        );
    }

    #[test]
    fn a_header_that_is_not_an_address_stops_the_walk() {
        let local = Some(ip("127.0.0.1"));
        assert_eq!(client_ip(local, Some("unknown")), local);
        assert_eq!(
            client_ip(local, Some("198.51.100.4, garbage, 10.0.0.2")),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(local, Some("10.0.0.2, 10.0.0.3")),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(client_ip(None, Some("198.51.100.4")), None);
    }
}
