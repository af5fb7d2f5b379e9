//! API-key authentication of the `/v1` routes: the key names the
//! organization, and the request gets service clients acting for it.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use muster_runtime::ApiError;

use crate::error::HttpError;
use crate::startup::AppState;
use crate::tenants::{self, ApiKey};

const API_KEY_HEADER: &str = "x-api-key";

/// Refuses requests without a live API key; attaches a [`crate::upstream::TenantApi`].
pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let presented = presented_key(request.headers()).ok_or_else(|| {
        HttpError::unauthenticated(
            "missing API key: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`",
        )
    })?;
    let refused = || HttpError::unauthenticated("unknown or revoked API key");
    let key = ApiKey::parse(presented).ok_or_else(refused)?;
    let organization = tenants::organization_for_key(&state.pool, &key)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(refused)?;

    request
        .extensions_mut()
        .insert(state.upstreams.for_organization(&organization));
    Ok(next.run(request).await)
}

/// The key in `Authorization: Bearer` or, failing that, in `X-Api-Key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let header = || {
        headers
            .get(API_KEY_HEADER)
            .and_then(|value| value.to_str().ok())
    };
    bearer
        .or_else(header)
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_key_is_read_from_the_bearer_or_the_api_key_header() {
        let mut bearer = HeaderMap::new();
        bearer.insert(AUTHORIZATION, HeaderValue::from_static("Bearer mk_one"));
        assert_eq!(presented_key(&bearer), Some("mk_one"));

        let mut header = HeaderMap::new();
        header.insert(API_KEY_HEADER, HeaderValue::from_static("mk_two"));
        assert_eq!(presented_key(&header), Some("mk_two"));

        let mut basic = HeaderMap::new();
        basic.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert_eq!(presented_key(&basic), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
