//! Public double opt-in: `POST /subscribe` takes a form subscription (no API
//! key; the form names its organization) and contacts records it pending;
//! the e-mail messaging then sends links to `/confirm/{token}`, where a GET
//! only shows a button (mail scanners follow links) and the POST confirms.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use muster_proto::contacts::v1::{ConfirmConsentRequest, SubscribeRequest};
use muster_runtime::TenantId;
use muster_runtime::confirmation::Unusable;
use serde::Deserialize;
use tonic::{Code, Status};
use uuid::Uuid;

mod limit;

pub use limit::FormLimiter;

use crate::startup::AppState;
use crate::unsubscribe::page::{escape, page};

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
    axum::Form(form): axum::Form<SubscribeForm>,
) -> Response {
    let Ok(tenant) = Uuid::parse_str(form.organization.trim()) else {
        return refused("organization: not an organization id; check the form's address");
    };
    let known: Result<Option<Uuid>, sqlx::Error> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&state.pool)
            .await;
    match known {
        Ok(Some(_)) => {}
        Ok(None) => return refused("organization: no such organization; check the form"),
        Err(error) => {
            tracing::error!(%error, "could not read the organizations");
            return unavailable();
        }
    }
    let tenant = TenantId::from_uuid(tenant);
    if !state.forms.admit(tenant, &client.ip).await {
        tracing::warn!(tenant_id = %tenant, "form subscriptions over the hourly limit refused");
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many subscriptions",
            "<h1>Too many subscriptions</h1><p>Too many subscriptions came from your network \
             this hour. Please try again in an hour.</p>",
        );
    }
    let request = SubscribeRequest {
        email: form.email,
        first_name: form.first_name,
        last_name: form.last_name,
        purpose: form.purpose,
        notice: form.notice,
        evidence: client.evidence(),
    };
    match state.upstreams.consent_for(tenant).subscribe(request).await {
        Ok(_) => page(
            StatusCode::OK,
            "Check your inbox",
            "<h1>Check your inbox</h1><p>We sent you an e-mail with a link. \
             Open it to confirm your subscription: until then we will not write to you.</p>",
        ),
        Err(status) => failure(&status),
    }
}

/// `GET /confirm/{token}`: a button to confirm; nothing changes on a GET.
#[tracing::instrument(name = "gateway.confirm.show", skip_all)]
async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if token.len() > MAX_TOKEN_CHARS {
        return invalid_link();
    }
    match state
        .upstreams
        .confirmation_tokens()
        .read(&token, Utc::now())
    {
        Ok(_) => page(
            StatusCode::OK,
            "Confirm your subscription",
            "<h1>Confirm your subscription</h1>\
             <p>Press the button to confirm that you want to receive our e-mails.</p>\
             <form method=\"post\"><button type=\"submit\">Confirm</button></form>",
        ),
        Err(Unusable::Expired) => expired(),
        Err(Unusable::Invalid) => invalid_link(),
    }
}

/// `POST /confirm/{token}`: confirms; a second time says it is done.
#[tracing::instrument(name = "gateway.confirm", skip_all)]
async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: Client,
) -> Response {
    if token.len() > MAX_TOKEN_CHARS {
        return invalid_link();
    }
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
        Ok(_) => page(
            StatusCode::OK,
            "Subscription confirmed",
            "<h1>Subscription confirmed</h1><p>Thank you. You can unsubscribe at any time \
             from the link at the bottom of every e-mail.</p>",
        ),
        Err(status) => failure(&status),
    }
}

fn invalid_link() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Invalid link",
        "<h1>This link is not valid</h1><p>It may have been cut or changed when it was \
         copied. Open it again straight from the e-mail.</p>",
    )
}

fn expired() -> Response {
    page(
        StatusCode::GONE,
        "Link expired",
        "<h1>This link has expired</h1><p>Subscribe again from the form to receive a new \
         one.</p>",
    )
}

fn refused(message: &str) -> Response {
    let body = format!(
        "<h1>The form could not be sent</h1><p>{}</p>",
        escape(message)
    );
    page(StatusCode::BAD_REQUEST, "Not sent", &body)
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<h1>Please try again</h1><p>We cannot handle your request right now. Please try \
         again in a few minutes.</p>",
    )
}

/// A page for a contacts error: the visitor's input, a stale link, or ours.
fn failure(status: &Status) -> Response {
    match status.code() {
        Code::InvalidArgument if status.message().starts_with("token") => invalid_link(),
        Code::InvalidArgument => refused(status.message()),
        Code::FailedPrecondition => {
            let body = format!(
                "<h1>Nothing to confirm</h1><p>{}</p>",
                escape(status.message())
            );
            page(StatusCode::CONFLICT, "Nothing to confirm", &body)
        }
        Code::Unavailable => unavailable(),
        code => {
            tracing::error!(
                ?code,
                error = status.message(),
                "public subscription failed"
            );
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "<h1>Something went wrong</h1><p>Please try again later.</p>",
            )
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
