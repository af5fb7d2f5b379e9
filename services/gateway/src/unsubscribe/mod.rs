//! The public unsubscribe endpoints behind the links in every message:
//! `GET /u/{token}` asks for confirmation (link scanners follow GETs, so a
//! GET never unsubscribes); `POST /u/{token}` unsubscribes, from the page's
//! button or from a mail client's RFC 8058 one-click request.

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
async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if token.len() > MAX_TOKEN_CHARS {
        return page::invalid_link();
    }
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
        Ok(reply) => page::confirm(&reply.into_inner()),
        Err(status) => page::failure(&status),
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
    if token.len() > MAX_TOKEN_CHARS {
        return page::invalid_link();
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
        token,
        method: method.into(),
    };
    match state
        .upstreams
        .public_messaging()
        .unsubscribe(request)
        .await
    {
        Ok(reply) => page::done(&reply.into_inner()),
        Err(status) => page::failure(&status),
    }
}
