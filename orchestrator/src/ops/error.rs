//! What an operation answers when it does not do what was asked: each
//! variant is one of the contract's error codes, so every front door (the
//! API's JSON, the portal's page, the bot's ephemeral reply) says the same
//! words. Internal errors keep their cause for the one log line.

use vessel_api::ErrorCode;

/// Whatever went wrong inside: a database error, a serialisation bug.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
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

impl OpError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        OpError::Invalid {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        OpError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A broken promise of our own (a row that must exist, a value that must
    /// convert), as an internal error with that sentence as its cause.
    pub fn bug(what: impl Into<String>) -> Self {
        OpError::Internal(what.into().into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            OpError::Unauthorized(_) => ErrorCode::Unauthorized,
            OpError::Forbidden(_) => ErrorCode::Forbidden,
            OpError::NotFound(_) => ErrorCode::NotFound,
            OpError::Invalid { .. } => ErrorCode::Invalid,
            OpError::Conflict { code, .. } => *code,
            OpError::TooLarge(_) => ErrorCode::TooLarge,
            OpError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<sqlx::Error> for OpError {
    fn from(e: sqlx::Error) -> Self {
        OpError::Internal(Box::new(e))
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
