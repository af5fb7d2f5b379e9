//! Errors answered to REST clients. Every failure, the gateway's own or a
//! service's, ends as a gRPC status code that [`classify`] maps to HTTP.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_runtime::ApiError;
use serde_json::json;
use tonic::{Code, Status};

use crate::upstream::Upstream;

/// A request that failed, answered as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A service behind the gateway answered with an error status.
    #[error("{upstream} service: {}", .status.message())]
    Upstream { upstream: Upstream, status: Status },
    /// The gateway refused the request itself.
    #[error(transparent)]
    Gateway(#[from] ApiError),
}

impl HttpError {
    /// A bad value in the request part `field` (a query parameter, the body).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::invalid(field, message).into()
    }

    /// The missing or refused API key.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::Unauthenticated(message.into()).into()
    }

    /// The status the client sees: internal causes are logged here, once.
    fn into_status(self) -> Status {
        match self {
            Self::Gateway(error) => Status::from(error),
            Self::Upstream { upstream, status } => upstream_status(upstream, status),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.into_status();
        let (http, code) = classify(status.code());
        let body = json!({ "error": { "code": code, "message": status.message() } });
        (http, Json(body)).into_response()
    }
}

/// The HTTP status and the error code name of a gRPC status code.
pub fn classify(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
        Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        Code::FailedPrecondition => (StatusCode::CONFLICT, "failed_precondition"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// What a client may learn of a service's error. Statuses about the request
/// pass through; the others name the service and keep their details in the log.
fn upstream_status(upstream: Upstream, status: Status) -> Status {
    match status.code() {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::PermissionDenied => status,
        Code::Unavailable => {
            tracing::warn!(service = %upstream, error = status.message(), "service unavailable");
            Status::unavailable(format!(
                "the {upstream} service is unavailable; retry shortly"
            ))
        }
        Code::Unauthenticated => {
            // The client's key was accepted: the service refused the gateway's
            // own credential, which is a deployment fault, not the client's.
            tracing::error!(
                service = %upstream,
                error = status.message(),
                "service refused the gateway credential; do the auth.token_secret values match?"
            );
            Status::internal(format!(
                "the {upstream} service refused the gateway; it has been logged"
            ))
        }
        code => {
            let error = status.message();
            tracing::error!(service = %upstream, ?code, error, "service failed");
            Status::internal(format!("the {upstream} service failed; it has been logged"))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    #[test]
    fn each_service_code_maps_to_its_http_status() {
        let expected = [
            (Code::InvalidArgument, 400),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::FailedPrecondition, 409),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DeadlineExceeded, 500),
            (Code::ResourceExhausted, 500),
        ];
        for (code, http) in expected {
            assert_eq!(classify(code).0.as_u16(), http, "{code:?}");
        }
    }

    async fn answer(error: HttpError) -> (u16, serde_json::Value) {
        let response = error.into_response();
        let status = response.status().as_u16();
        let body = to_bytes(response.into_body(), 4096).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn an_unreachable_service_is_named_in_a_503() {
        let status = Status::unavailable("tcp connect error: Connection refused");
        let (http, body) = answer(HttpError::Upstream {
            upstream: Upstream::Contacts,
            status,
        })
        .await;

        assert_eq!(http, 503);
        assert_eq!(body["error"]["code"], "unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("contacts service"), "{message}");
        assert!(
            !message.contains("tcp"),
            "transport details stay in the log: {message}"
        );
    }

    #[tokio::test]
    async fn a_service_complaint_about_the_request_reaches_the_client() {
        let status = Status::failed_precondition("the campaign is already sending");
        let (http, body) = answer(HttpError::Upstream {
            upstream: Upstream::Messaging,
            status,
        })
        .await;

        assert_eq!(http, 409);
        assert_eq!(body["error"]["code"], "failed_precondition");
        assert_eq!(body["error"]["message"], "the campaign is already sending");
    }

    #[tokio::test]
    async fn a_refused_gateway_credential_is_not_blamed_on_the_client() {
        let status = Status::unauthenticated("credential signature does not verify");
        let (http, body) = answer(HttpError::Upstream {
            upstream: Upstream::Messaging,
            status,
        })
        .await;

        assert_eq!(http, 500);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("messaging")
        );
    }

    #[tokio::test]
    async fn an_internal_cause_stays_out_of_the_answer() {
        let error = ApiError::Internal(anyhow::anyhow!("password=hunter2 in the pool url"));
        let (http, body) = answer(HttpError::Gateway(error)).await;

        assert_eq!(http, 500);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("hunter2"));
    }
}
