//! Who is calling: a bearer JWT, verified with the algorithm pinned, issuer,
//! audience and expiry checked. Permissions are claims.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::AppState;
use crate::domain::UnixName;

pub mod perm {
    pub const VESSELS_CREATE: &str = "vessels:create";
    pub const VESSELS_READ: &str = "vessels:read";
    pub const VESSELS_MANAGE_ANY: &str = "vessels:manage:any";
    pub const FLEET_READ: &str = "fleet:read";
    pub const FLEET_MANAGE: &str = "fleet:manage";
    pub const EVENTS_READ: &str = "events:read";
    /// The bot's own key-value state (cursor, message references).
    pub const BOT_STATE: &str = "bot:state";
    pub const HOSTS_MANAGE: &str = "hosts:manage";
    pub const AUDIT_READ: &str = "audit:read";
}

#[derive(Debug, Serialize, Deserialize)]
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

/// HS256 verification for service tokens.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn hs256(
        secret: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        // Only HS256 is accepted from this key: `none` and algorithm
        // confusion are rejected by the pinned list.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        Ok(Verifier {
            key: DecodingKey::from_secret(secret.as_bytes())?,
            validation,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| ApiError::Unauthorized(format!("the token was rejected: {}", reason(&e))))
    }
}

fn reason(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind::*;
    match e.kind() {
        ExpiredSignature => "it has expired",
        ImmatureSignature => "it is not valid yet",
        InvalidIssuer => "wrong issuer",
        InvalidAudience => "wrong audience",
        InvalidSignature => "bad signature",
        InvalidAlgorithm => "algorithm not allowed",
        MissingRequiredClaim(_) => "a required claim is missing",
        _ => "malformed",
    }
}

/// Mints a service token: what the bot sends when it acts for a user.
pub fn issue(
    secret: &str,
    issuer: &str,
    audience: &str,
    subject: &str,
    perms: &[&str],
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = Claims {
        sub: subject.to_string(),
        iss: issuer.to_string(),
        aud: audience.to_string(),
        exp: now + ttl_secs,
        iat: now,
        perms: perms.iter().map(|p| p.to_string()).collect(),
        unix_name: None,
        uid: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes())?,
    )
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    perms: HashSet<String>,
    pub unix_name: Option<UnixName>,
    pub uid: Option<i32>,
}

impl Caller {
    pub fn can(&self, perm: &str) -> bool {
        self.perms.contains(perm)
    }

    pub fn require(&self, perm: &str) -> Result<(), ApiError> {
        if self.can(perm) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the `{perm}` permission"
            )))
        }
    }
}

impl Caller {
    /// Verifies the bearer token of a request.
    pub fn authenticate(
        headers: &axum::http::HeaderMap,
        state: &AppState,
    ) -> Result<Caller, ApiError> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        let claims = state.verifier.verify(token)?;
        let unix_name = match claims.unix_name.as_deref() {
            Some(name) => Some(UnixName::parse(name).map_err(|e| {
                ApiError::Unauthorized(format!("the token's unix_name is unusable: {e}"))
            })?),
            None => None,
        };
        if matches!(claims.uid, Some(uid) if uid < 1000) {
            return Err(ApiError::Unauthorized(
                "the token's uid is below 1000".into(),
            ));
        }
        Ok(Caller {
            subject: claims.sub,
            perms: claims.perms.into_iter().collect(),
            unix_name,
            uid: claims.uid,
        })
    }
}

/// The caller the `authorize` middleware established.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(c) => Ok(c.clone()),
            None => Caller::authenticate(&parts.headers, state),
        }
    }
}
