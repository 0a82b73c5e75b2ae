//! Who is calling, and what they may do. A bearer JWT is verified with the
//! algorithm pinned per issuer, issuer, audience, expiry and not-before
//! checked. The orchestrator is the authority on roles: a token's
//! permissions count only as far as the subject's role (admins, machines
//! and researchers, from config) and the issuer's ceiling allow, so a leaked
//! bot credential cannot mint an admin.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::AppState;
use crate::config::{AuthConfig, OidcConfig};
use crate::domain::UnixName;
use crate::ops::{Caller, OpError};

pub use vessel_api::claims::Claims;
/// Permission names, from the contract: the route table, tokens and
/// clients all spell them from one place.
pub use vessel_api::perm;
use vessel_api::perm::Perm;

/// The subject the bot uses as itself (the outbox, its state).
pub const SERVICE_SUBJECT: &str = "vessel-bot";

/// A machine subject's permissions, longest token, and the time before
/// which its tokens are revoked.
struct Machine {
    perms: HashSet<String>,
    max_ttl: Duration,
    issued_after: Option<u64>,
}

/// Who may do what, from config: the one place roles are decided.
struct Roles {
    admins: HashSet<String>,
    /// Machine subjects (Prometheus): their permissions and token lifetime.
    machines: HashMap<String, Machine>,
    max_token_ttl: Duration,
}

impl Roles {
    /// The most `subject` may do, whatever its token claims.
    fn of(&self, subject: &str, from_service: bool) -> HashSet<String> {
        let set = |perms: &[&str]| perms.iter().map(|p| p.to_string()).collect();
        if from_service && subject == SERVICE_SUBJECT {
            return set(perm::BOT_SERVICE);
        }
        if from_service {
            if let Some(m) = self.machines.get(subject) {
                return m.perms.clone();
            }
        }
        if self.admins.contains(subject) {
            set(perm::ADMIN)
        } else {
            set(perm::RESEARCHER)
        }
    }

    /// The longest a service token for `subject` may live.
    fn max_ttl(&self, subject: &str) -> Duration {
        self.machines
            .get(subject)
            .map(|m| m.max_ttl)
            .unwrap_or(self.max_token_ttl)
    }
}

/// A verified token: its claims and what the caller may really do.
pub struct Verified {
    pub claims: Claims,
    pub perms: BTreeSet<Perm>,
    pub from_service: bool,
}

/// Verifies tokens from the issuers in config: the service issuer (the bot,
/// EdDSA: the orchestrator holds only the public key) and any OIDC issuers
/// (RS256/ES256 keys from their JWKS). The token's `iss` picks the issuer,
/// and the issuer pins the algorithms, so `alg: none` and algorithm
/// confusion (HS256 signed with a public key) are refused before any
/// signature is checked.
pub struct Verifier {
    service_issuer: String,
    service_key: DecodingKey,
    service_validation: Validation,
    roles: Roles,
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

#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("auth.service_public_key is not an Ed25519 public key in PEM")]
    ServiceKey(#[source] jsonwebtoken::errors::Error),
    #[error("cannot make an HTTP client for the JWKS")]
    Http(#[source] reqwest::Error),
}

impl Verifier {
    pub fn new(auth: &AuthConfig) -> Result<Self, VerifierError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&auth.issuer]);
        validation.set_audience(&[&auth.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        let roles = Roles {
            admins: auth.admins.iter().cloned().collect(),
            machines: auth
                .machines
                .iter()
                .map(|(subject, m)| {
                    let machine = Machine {
                        perms: m.perms.iter().cloned().collect(),
                        max_ttl: m.max_token_ttl.duration(),
                        issued_after: m.issued_after.map(|t| t.timestamp().max(0) as u64),
                    };
                    (subject.clone(), machine)
                })
                .collect(),
            max_token_ttl: auth.max_token_ttl.duration(),
        };
        let mut oidc = Vec::new();
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
            oidc.push(OidcIssuer {
                config: config.clone(),
                algorithms,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .map_err(VerifierError::Http)?,
                keys: tokio::sync::RwLock::new(JwkSet { keys: Vec::new() }),
                fetched: tokio::sync::Mutex::new(None),
            });
        }
        Ok(Verifier {
            service_issuer: auth.issuer.clone(),
            service_key: DecodingKey::from_ed_pem(auth.service_public_key.expose().as_bytes())
                .map_err(VerifierError::ServiceKey)?,
            service_validation: validation,
            roles,
            oidc,
        })
    }

    /// Verifies `token`. For an OIDC issuer, `claims.sub` of the answer is
    /// the person the identity is (see `identity`): the one an admin linked
    /// it to in `db`, else `SUB@NAME`; roles are that person's.
    pub async fn verify(&self, token: &str, db: &sqlx::PgPool) -> Result<Verified, OpError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| OpError::Unauthorized("the token was rejected: malformed".into()))?;
        // Only to pick the issuer; nothing is trusted before the signature.
        let peek: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| OpError::Unauthorized("the token was rejected: malformed".into()))?;
        let iss = peek["iss"].as_str().unwrap_or_default();
        if iss == self.service_issuer {
            return self.verify_service(token, &header);
        }
        let Some(issuer) = self.oidc.iter().find(|o| o.config.issuer == iss) else {
            return Err(rejected("unknown issuer"));
        };
        let mut claims = issuer.verify(token, &header).await?;
        let name = issuer.config.name();
        claims.sub = match crate::store::identities::resolve(db, &name, &claims.sub).await? {
            Some(person) => person,
            None => crate::identity::qualified(&claims.sub, &name),
        };
        let ceiling: HashSet<&String> = issuer.config.grants.iter().collect();
        let perms = self
            .roles
            .of(&claims.sub, false)
            .into_iter()
            .filter(|p| claims.perms.contains(p) && ceiling.contains(p))
            .filter_map(|p| Perm::parse(&p))
            .collect();
        Ok(Verified {
            claims,
            perms,
            from_service: false,
        })
    }

    fn verify_service(&self, token: &str, header: &Header) -> Result<Verified, OpError> {
        if header.alg != Algorithm::EdDSA {
            return Err(rejected("algorithm not allowed"));
        }
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.service_key, &self.service_validation)
                .map(|data| data.claims)
                .map_err(|e| rejected(reason(&e)))?;
        // A stolen short-lived token is worth little; one that lives for a
        // year is a password. Cap what the service key may sign.
        let lifetime = claims.exp.saturating_sub(now_secs());
        if lifetime > self.roles.max_ttl(&claims.sub).as_secs() + 30 {
            return Err(rejected("it lives longer than this orchestrator allows"));
        }
        let revoked_before = self
            .roles
            .machines
            .get(&claims.sub)
            .and_then(|m| m.issued_after);
        if revoked_before.is_some_and(|t| claims.iat < t) {
            return Err(rejected(
                "it was revoked (issued before this machine's `issued_after`)",
            ));
        }
        let perms = self
            .roles
            .of(&claims.sub, true)
            .into_iter()
            .filter(|p| claims.perms.contains(p))
            .filter_map(|p| Perm::parse(&p))
            .collect();
        Ok(Verified {
            claims,
            perms,
            from_service: true,
        })
    }

    /// The most a person signed in as `subject` (not a service) may do:
    /// the portal's dev sign-in, which has no token to narrow it.
    pub(crate) fn role_of(&self, subject: &str) -> BTreeSet<Perm> {
        self.roles
            .of(subject, false)
            .iter()
            .filter_map(|p| Perm::parse(p))
            .collect()
    }

    /// Whether `ttl` is within what this orchestrator accepts for `subject`
    /// (the `token` subcommand refuses to print what would be refused).
    pub fn allows_ttl(&self, subject: &str, ttl: Duration) -> Result<(), Duration> {
        let max = self.roles.max_ttl(subject);
        if ttl <= max {
            Ok(())
        } else {
            Err(max)
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn rejected(why: &str) -> OpError {
    OpError::Unauthorized(format!("the token was rejected: {why}"))
}

impl OidcIssuer {
    async fn verify(&self, token: &str, header: &Header) -> Result<Claims, OpError> {
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
        // The client the token was issued to: only the lab's own clients
        // (the CLI, the portal) may act here, not any app of the issuer's.
        if !self.config.allowed_clients.is_empty() {
            let client = c["azp"].as_str().or_else(|| c["client_id"].as_str());
            if !client.is_some_and(|id| self.config.allowed_clients.iter().any(|a| a == id)) {
                return Err(rejected(
                    "issued to a client this orchestrator does not accept",
                ));
            }
        }
        // Only the configured claim: `scope` lists what a client asked for,
        // which a user can choose, so it is never a permission.
        let perms = permissions_in(&c[&self.config.permissions_claim]);
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

/// The permissions a claim lists: a JSON array (Auth0, Keycloak mappers),
/// or one string of names separated by commas or spaces (Glewlwyd joins a
/// multi-valued user property with commas).
fn permissions_in(claim: &serde_json::Value) -> Vec<String> {
    match claim {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect(),
        serde_json::Value::String(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
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

/// Mints a service token (EdDSA): what the bot sends when it acts for a
/// user, and what `vessel-orchestrator token` prints with the bot's key.
pub fn issue(
    private_pem: &str,
    issuer: &str,
    audience: &str,
    subject: &str,
    perms: &[&str],
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = now_secs();
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
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_pem(private_pem.as_bytes())?,
    )
}

/// Verifies the bearer token of a request: who is calling, and what the
/// orchestrator lets them do.
pub async fn authenticate(
    headers: &axum::http::HeaderMap,
    verifier: &Verifier,
    db: &sqlx::PgPool,
) -> Result<Caller, OpError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| OpError::Unauthorized("a bearer token is required".into()))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            OpError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })?;
    let Verified {
        claims,
        perms,
        from_service,
    } = verifier.verify(token, db).await?;
    let unix_name = match claims.unix_name.as_deref() {
        Some(name) => Some(UnixName::parse(name).map_err(|e| {
            OpError::Unauthorized(format!("the token's unix_name is unusable: {e}"))
        })?),
        None => None,
    };
    if matches!(claims.uid, Some(uid) if uid < 1000) {
        return Err(OpError::Unauthorized(
            "the token's uid is below 1000".into(),
        ));
    }
    Ok(Caller::new(
        claims.sub,
        from_service,
        perms,
        unix_name,
        claims.uid,
    ))
}

/// The caller the `authorize` middleware established.
impl FromRequestParts<AppState> for Caller {
    type Rejection = OpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OpError> {
        match parts.extensions.get::<Caller>() {
            Some(c) => Ok(c.clone()),
            None => authenticate(&parts.headers, &state.verifier, &state.ctx.db).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permissions_claim_is_an_array_or_a_list_in_a_string() {
        let want = ["vessels:create", "fleet:read"];
        assert_eq!(
            permissions_in(&serde_json::json!(["vessels:create", "fleet:read"])),
            want
        );
        assert_eq!(
            permissions_in(&serde_json::json!("vessels:create,fleet:read")),
            want
        );
        assert_eq!(
            permissions_in(&serde_json::json!("vessels:create fleet:read")),
            want
        );
        assert!(permissions_in(&serde_json::json!(7)).is_empty());
    }
}
