//! The public unsubscribe endpoints behind the links in every message:
//! `GET /u/{token}` asks for confirmation (link scanners follow GETs, so a
//! GET never unsubscribes); `POST /u/{token}` unsubscribes, from the page's
//! button or from a mail client's RFC 8058 one-click request.
//!
//! Messaging decides what a token does. The gateway reads the token too,
//! only to name the link's organization on the pages and to speak the
//! visitor's language, else the organization's ([`crate::audience`]).

mod one_click;
pub(crate) mod page;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::get;
use muster_proto::messaging::v1::UnsubscribeRequest;

use crate::audience::{Audience, accepted};
use crate::startup::AppState;

/// Form bodies are a few bytes; anything larger is not ours.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Tokens are short; a longer one was not written by messaging.
const MAX_TOKEN_CHARS: usize = 1024;

/// The `/u/{token}` routes; no API key.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/u/{token}", get(show).post(confirm))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// `GET /u/{token}`: the confirmation page, with the masked address.
#[tracing::instrument(name = "gateway.unsubscribe.show", skip_all)]
async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let accepted = accepted(&headers);
    if token.len() > MAX_TOKEN_CHARS {
        return page::invalid_link(Audience::unnamed(accepted).language);
    }
    let audience = audience(&state, &token, accepted).await;
    let request = UnsubscribeRequest {
        token,
        method: String::new(),
    };
    match state
        .upstreams
        .public_messaging()
        .inspect_unsubscribe(request)
        .await
    {
        Ok(reply) => page::confirm(&audience, &reply.into_inner()),
        Err(status) => page::failure(audience.language, &status),
    }
}

/// `POST /u/{token}`: unsubscribes; idempotent.
#[tracing::instrument(name = "gateway.unsubscribe.confirm", skip_all, fields(method))]
async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let accepted = accepted(&headers);
    if token.len() > MAX_TOKEN_CHARS {
        return page::invalid_link(Audience::unnamed(accepted).language);
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let method = if one_click::requested(content_type, &body) {
        "one-click"
    } else {
        "link"
    };
    tracing::Span::current().record("method", method);

    let request = UnsubscribeRequest {
        token: token.clone(),
        method: method.into(),
    };
    let unsubscribed = state
        .upstreams
        .public_messaging()
        .unsubscribe(request)
        .await;
    // Only the page waits for the organization's name, never the unsubscribe.
    let audience = audience(&state, &token, accepted).await;
    match unsubscribed {
        Ok(reply) => page::done(&audience, &reply.into_inner()),
        Err(status) => page::failure(audience.language, &status),
    }
}

/// The audience of a link's page: its organization's when the token is
/// genuine, else unnamed. Messaging still judges the token on its own.
async fn audience(state: &AppState, token: &str, accepted: Option<&str>) -> Audience {
    match state.upstreams.unsubscribe_tokens().read(token) {
        Some((tenant, _)) => Audience::of_tenant(&state.pool, tenant, accepted).await,
        None => Audience::unnamed(accepted),
    }
}
