//! The error body every non-2xx answer carries, `{error, message, field?}`,
//! with the machine-readable codes as an enum so clients branch on a code,
//! never on message text.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no token, or one that does not verify.
    Unauthorized,
    /// 403: a valid token without the permission, or another's vessel.
    Forbidden,
    NotFound,
    /// 422: bad input; `field` names it. Nothing was written.
    Invalid,
    /// 413: the body is larger than the API reads.
    TooLarge,
    /// 409: no host has room for the request now.
    NoCapacity,
    NameTaken,
    /// Contended placement gave up; trying again may succeed.
    Busy,
    NotLive,
    NotRunning,
    UnixNameTaken,
    HasLiveVessels,
    IdentityTaken,
    /// A name matches more than one vessel (admins naming others').
    Ambiguous,
    /// A one-time key (a Slack signature) was seen before.
    Replayed,
    /// 409: the caller already has `max_pending` requests waiting in line.
    TooManyWaiting,
    /// 409: not waiting in line (moving to the front).
    NotWaiting,
    Internal,
    /// A code this client does not know yet (a newer orchestrator).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status the orchestrator answers with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::TooLarge => 413,
            ErrorCode::Invalid => 422,
            ErrorCode::NoCapacity
            | ErrorCode::NameTaken
            | ErrorCode::Busy
            | ErrorCode::NotLive
            | ErrorCode::NotRunning
            | ErrorCode::UnixNameTaken
            | ErrorCode::HasLiveVessels
            | ErrorCode::IdentityTaken
            | ErrorCode::Ambiguous
            | ErrorCode::Replayed
            | ErrorCode::TooManyWaiting
            | ErrorCode::NotWaiting => 409,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Invalid => "invalid",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NoCapacity => "no_capacity",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::Busy => "busy",
            ErrorCode::NotLive => "not_live",
            ErrorCode::NotRunning => "not_running",
            ErrorCode::UnixNameTaken => "unix_name_taken",
            ErrorCode::HasLiveVessels => "has_live_vessels",
            ErrorCode::IdentityTaken => "identity_taken",
            ErrorCode::Ambiguous => "ambiguous",
            ErrorCode::Replayed => "replayed",
            ErrorCode::TooManyWaiting => "too_many_waiting",
            ErrorCode::NotWaiting => "not_waiting",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a refusal says: a code, a sentence a person can act on, and the
/// request field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_on_the_wire_and_unknown_ones_do_not_fail() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"no_capacity","message":"full"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::NoCapacity);
        assert_eq!(body.error.status(), 409);
        let newer: ErrorBody =
            serde_json::from_str(r#"{"error":"quota_exceeded","message":"x"}"#).unwrap();
        assert_eq!(newer.error, ErrorCode::Unknown);
        let json = serde_json::to_value(ErrorCode::UnixNameTaken).unwrap();
        assert_eq!(json, "unix_name_taken");
        assert_eq!(ErrorCode::UnixNameTaken.as_str(), "unix_name_taken");
    }
}
