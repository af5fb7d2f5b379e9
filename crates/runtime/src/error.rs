//! The one small error-code set of the services, mapped once to gRPC status.
//! The gateway maps those statuses to HTTP in one place.

use tonic::{Code, Status};

/// An error a caller can act on; internal causes are logged, never returned.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// The whole message: "campaign X not found", and what to do when known.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A bad value in the request field `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Something the caller named does not exist (in the caller's organization).
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// [`ApiError::not_found`], saying what to do instead.
    pub fn not_found_then(what: impl std::fmt::Display, hint: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{what} not found: {hint}"))
    }

    /// The request is valid but the resource's state forbids it now.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::FailedPrecondition(message.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self::Internal(error)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                Self::Unavailable("the database is not reachable; retry shortly".into())
            }
            _ => Self::Internal(error.into()),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidArgument { .. } => {
                Status::new(Code::InvalidArgument, error.to_string())
            }
            ApiError::NotFound(_) => Status::new(Code::NotFound, error.to_string()),
            ApiError::AlreadyExists(_) => Status::new(Code::AlreadyExists, error.to_string()),
            ApiError::FailedPrecondition(_) => {
                Status::new(Code::FailedPrecondition, error.to_string())
            }
            ApiError::Unauthenticated(_) => Status::new(Code::Unauthenticated, error.to_string()),
            ApiError::PermissionDenied(_) => Status::new(Code::PermissionDenied, error.to_string()),
            ApiError::Unavailable(_) => Status::new(Code::Unavailable, error.to_string()),
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                Status::new(Code::Internal, "internal error; it has been logged")
            }
        }
    }
}
