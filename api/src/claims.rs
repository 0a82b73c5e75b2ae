//! The claims of an orchestrator token: who (`sub`), for whom (`aud`), from
//! which issuer, until when, with which permissions, and optionally the
//! unix identity the issuer knows for the subject.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default)]
    pub perms: Vec<String>,
    /// The unix identity to use, when the issuer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i32>,
}
