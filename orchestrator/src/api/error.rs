//! An operation's error as an HTTP answer: each variant maps to a status
//! and the contract's error body `{error, message, field?}`. Internal errors
//! keep their cause; the whole chain is logged once, in the request's span,
//! and the caller gets a generic sentence.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use vessel_api::ErrorBody;

pub use crate::ops::error::{chain, OpError};

impl IntoResponse for OpError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &self {
            OpError::Internal(_) => {
                // Runs inside the handler, so the request's span is current.
                tracing::error!(error = %chain(&self), "request failed");
                "something went wrong on our side; it has been logged".to_string()
            }
            other => other.to_string(),
        };
        let field = match self {
            OpError::Invalid { field, .. } => field,
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
