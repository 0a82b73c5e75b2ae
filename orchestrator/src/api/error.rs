//! One error type for the API: each variant maps to a status and the
//! contract's error body `{error, message, field?}`. Internal errors keep
//! their cause; the whole chain is logged once, in the request's span, and
//! the caller gets a generic sentence.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use vessel_api::{ErrorBody, ErrorCode};

/// Whatever went wrong inside: a database error, a serialisation bug.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A broken promise of our own (a row that must exist, a value that must
    /// convert), as an internal error with that sentence as its cause.
    pub fn bug(what: impl Into<String>) -> Self {
        ApiError::Internal(what.into().into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Invalid { .. } => ErrorCode::Invalid,
            ApiError::Conflict { code, .. } => *code,
            ApiError::TooLarge(_) => ErrorCode::TooLarge,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

/// `error: cause: cause's cause…`, for the one log line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &self {
            ApiError::Internal(_) => {
                // Runs inside the handler, so the request's span is current.
                tracing::error!(error = %chain(&self), "request failed");
                "something went wrong on our side; it has been logged".to_string()
            }
            other => other.to_string(),
        };
        let field = match self {
            ApiError::Invalid { field, .. } => field,
            _ => None,
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: code,
                message,
                field,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
