//! Who is calling: a bearer JWT, verified with the algorithm pinned per
//! issuer, issuer, audience, expiry and not-before checked. Permissions are
//! claims.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::error::ApiError;
use super::AppState;
use crate::config::{AuthConfig, OidcConfig};
use crate::domain::UnixName;

pub use vessel_api::claims::Claims;
/// Permission names, from the contract: the route table, tokens and
/// clients all spell them from one place.
pub use vessel_api::perm;

/// Verifies tokens from the issuers in config: the HS256 service issuer
/// (the bot) and any OIDC issuers (RS256/ES256 keys from their JWKS). The
/// token's `iss` picks the issuer, and the issuer pins the algorithms, so
/// `alg: none` and algorithm confusion (HS256 signed with a public key)
/// are refused before any signature is checked.
pub struct Verifier {
    service_issuer: String,
    service_key: DecodingKey,
    service_validation: Validation,
    oidc: Vec<OidcIssuer>,
}

struct OidcIssuer {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: tokio::sync::RwLock<JwkSet>,
    /// When the JWKS was last fetched: an unknown `kid` refetches at most
    /// once per `min_refresh`, so garbage tokens cannot hammer the issuer.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

impl Verifier {
    pub fn new(auth: &AuthConfig) -> Result<Self, jsonwebtoken::errors::Error> {
        let mut v = Verifier::hs256(auth.hs256_secret.expose(), &auth.issuer, &auth.audience)?;
        for config in &auth.oidc {
            let algorithms = config
                .algorithms
                .iter()
                .filter_map(|a| match a.as_str() {
                    "RS256" => Some(Algorithm::RS256),
                    "ES256" => Some(Algorithm::ES256),
                    _ => None,
                })
                .collect();
            v.oidc.push(OidcIssuer {
                config: config.clone(),
                algorithms,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("http client"),
                keys: tokio::sync::RwLock::new(JwkSet { keys: Vec::new() }),
                fetched: tokio::sync::Mutex::new(None),
            });
        }
        Ok(v)
    }

    pub fn hs256(
        secret: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        Ok(Verifier {
            service_issuer: issuer.to_string(),
            service_key: DecodingKey::from_secret(secret.as_bytes())?,
            service_validation: validation,
            oidc: Vec::new(),
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::Unauthorized("the token was rejected: malformed".into()))?;
        // Only to pick the issuer; nothing is trusted before the signature.
        let peek: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| ApiError::Unauthorized("the token was rejected: malformed".into()))?;
        let iss = peek["iss"].as_str().unwrap_or_default();
        if iss == self.service_issuer {
            if header.alg != Algorithm::HS256 {
                return Err(rejected("algorithm not allowed"));
            }
            return jsonwebtoken::decode::<Claims>(
                token,
                &self.service_key,
                &self.service_validation,
            )
            .map(|data| data.claims)
            .map_err(|e| rejected(reason(&e)));
        }
        let Some(issuer) = self.oidc.iter().find(|o| o.config.issuer == iss) else {
            return Err(rejected("unknown issuer"));
        };
        issuer.verify(token, &header).await
    }
}

fn rejected(why: &str) -> ApiError {
    ApiError::Unauthorized(format!("the token was rejected: {why}"))
}

impl OidcIssuer {
    async fn verify(&self, token: &str, header: &Header) -> Result<Claims, ApiError> {
        if !self.algorithms.contains(&header.alg) {
            return Err(rejected("algorithm not allowed"));
        }
        let kid = header.kid.as_deref().ok_or_else(|| rejected("no key id"))?;
        let key = match self.key(kid, header.alg).await {
            Some(k) => k,
            None => {
                self.refresh().await;
                self.key(kid, header.alg)
                    .await
                    .ok_or_else(|| rejected("unknown key id"))?
            }
        };
        // The header's algorithm was checked against the pinned list above;
        // jsonwebtoken wants one key family per validation.
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| rejected(reason(&e)))?;
        let c = data.claims;
        let mut perms: Vec<String> = c[&self.config.permissions_claim]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(scope) = c["scope"].as_str() {
            perms.extend(scope.split_whitespace().map(str::to_string));
        }
        Ok(Claims {
            sub: c["sub"].as_str().unwrap_or_default().to_string(),
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            exp: c["exp"].as_u64().unwrap_or_default(),
            iat: c["iat"].as_u64().unwrap_or_default(),
            perms,
            unix_name: self
                .config
                .unix_name_claim
                .as_ref()
                .and_then(|claim| c[claim].as_str().map(str::to_string)),
            uid: None,
        })
    }

    /// The key with this id, if it is of the token's algorithm family (an
    /// RSA key never verifies an ES256 token, and the reverse).
    async fn key(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().await;
        keys.find(kid)
            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
            .filter(|k| k.family() == alg.family())
    }

    async fn refresh(&self) {
        let mut fetched = self.fetched.lock().await;
        if fetched.is_some_and(|at| at.elapsed() < self.config.min_refresh.duration()) {
            return;
        }
        *fetched = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => *self.keys.write().await = set,
            Err(e) => {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "cannot fetch the JWKS")
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, reqwest::Error> {
        self.http
            .get(&self.config.jwks_url)
            .send()
            .await?
            .error_for_status()?
            .json::<JwkSet>()
            .await
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
    pub async fn authenticate(
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
        let claims = state.verifier.verify(token).await?;
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
            None => Caller::authenticate(&parts.headers, state).await,
        }
    }
}
