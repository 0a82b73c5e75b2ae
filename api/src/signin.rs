//! How a front door signs a person in: `GET /v1/auth/config`, public, names
//! the identity provider the orchestrator trusts for the CLI and the
//! client id to use there. The CLI reads the rest (endpoints) from the
//! issuer's own discovery document.

use serde::{Deserialize, Serialize};

/// `GET /v1/auth/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInConfig {
    /// The OIDC issuer; `{issuer}/.well-known/openid-configuration` is its
    /// discovery document.
    pub issuer: String,
    /// The CLI's public client id at the issuer.
    pub client_id: String,
    /// The scopes to ask for, space-separated.
    pub scope: String,
    /// The audience the orchestrator checks: sent as `audience` (Auth0) and
    /// `resource` (RFC 8707) so the access token is made out to it.
    pub audience: String,
}
