//! The orchestrator's API as the bot uses it. Every call carries a
//! short-lived token that names the acting Slack user; the orchestrator
//! checks every permission again, so the bot decides nothing alone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::BotConfig;

/// Who the bot is acting for.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The Slack user id (or `console:NAME`): the orchestrator's subject.
    pub subject: String,
    /// The unix name to ask for on first sight.
    pub unix_name: Option<String>,
    pub admin: bool,
}

const RESEARCHER: &[&str] = &["vessels:create", "vessels:read", "fleet:read"];
const ADMIN: &[&str] = &[
    "vessels:create",
    "vessels:read",
    "fleet:read",
    "vessels:manage:any",
    "fleet:manage",
    "audit:read",
];
const SERVICE: &[&str] = &["events:read", "bot:state"];
const SERVICE_SUBJECT: &str = "vessel-bot";

/// An answer other than success, as the orchestrator phrased it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiFailure {
    pub status: u16,
    pub error: String,
    pub message: String,
    pub field: Option<String>,
}

impl ApiFailure {
    fn transport(e: impl std::fmt::Display) -> Self {
        ApiFailure {
            status: 0,
            error: "unreachable".into(),
            message: format!("the orchestrator did not answer ({e}); try again in a minute"),
            field: None,
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    perms: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    unix_name: Option<&'a str>,
}

#[derive(Clone)]
pub struct Orchestrator {
    http: reqwest::Client,
    base: String,
    key: EncodingKey,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// Told to the orchestrator's audit log: `slack` or `console`.
    via: String,
}

impl Orchestrator {
    pub fn new(config: &BotConfig) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Orchestrator {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(70))
                .build()
                .expect("http client"),
            base: config.orchestrator_url.trim_end_matches('/').to_string(),
            key: EncodingKey::from_secret(config.auth.hs256_secret.expose().as_bytes())?,
            issuer: config.auth.issuer.clone(),
            audience: config.auth.audience.clone(),
            ttl: config.token_ttl(),
            via: if config.slack.is_some() {
                "vessel-bot/slack"
            } else {
                "vessel-bot/console"
            }
            .into(),
        })
    }

    fn token(&self, subject: &str, perms: &[&str], unix_name: Option<&str>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let claims = Claims {
            sub: subject,
            iss: &self.issuer,
            aud: &self.audience,
            iat: now,
            exp: now + self.ttl.as_secs(),
            perms,
            unix_name,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 signing does not fail")
    }

    async fn send(
        &self,
        token: String,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-vessel-via", &self.via)
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(ApiFailure::transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(ApiFailure::transport)?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(ApiFailure {
            status: status.as_u16(),
            error: value["error"].as_str().unwrap_or("error").to_string(),
            message: value["message"]
                .as_str()
                .unwrap_or("the orchestrator refused")
                .to_string(),
            field: value["field"].as_str().map(str::to_string),
        })
    }

    pub async fn call(
        &self,
        actor: &Actor,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let perms = if actor.admin { ADMIN } else { RESEARCHER };
        let token = self.token(&actor.subject, perms, actor.unix_name.as_deref());
        self.send(token, method, path, body).await
    }

    async fn service(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let token = self.token(SERVICE_SUBJECT, SERVICE, None);
        self.send(token, method, path, body).await
    }

    pub async fn events(&self, after: i64, wait_secs: u64) -> Result<Value, ApiFailure> {
        self.service(
            Method::GET,
            &format!("/v1/events?after={after}&wait={wait_secs}"),
            None,
        )
        .await
    }

    pub async fn state_get(&self, key: &str) -> Result<Option<Value>, ApiFailure> {
        match self
            .service(Method::GET, &format!("/v1/bot/state/{}", encode(key)), None)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn state_put(&self, key: &str, value: Value) -> Result<(), ApiFailure> {
        self.service(
            Method::PUT,
            &format!("/v1/bot/state/{}", encode(key)),
            Some(value),
        )
        .await
        .map(|_| ())
    }

    pub async fn create(&self, actor: &Actor, body: Value) -> Result<Value, ApiFailure> {
        self.call(actor, Method::POST, "/v1/vessels", Some(body))
            .await
    }

    pub async fn list(&self, actor: &Actor) -> Result<Value, ApiFailure> {
        self.call(actor, Method::GET, "/v1/vessels", None).await
    }

    pub async fn list_all(&self, actor: &Actor, owner: Option<&str>) -> Result<Value, ApiFailure> {
        let path = match owner {
            Some(o) => format!("/v1/vessels?all=true&owner={}", encode(o)),
            None => "/v1/vessels?all=true".into(),
        };
        self.call(actor, Method::GET, &path, None).await
    }

    pub async fn show(&self, actor: &Actor, vessel: &str) -> Result<Value, ApiFailure> {
        self.call(
            actor,
            Method::GET,
            &format!("/v1/vessels/{}", encode(vessel)),
            None,
        )
        .await
    }

    pub async fn kill(&self, actor: &Actor, vessel: &str) -> Result<Value, ApiFailure> {
        self.call(
            actor,
            Method::DELETE,
            &format!("/v1/vessels/{}", encode(vessel)),
            None,
        )
        .await
    }

    pub async fn extend(&self, actor: &Actor, vessel: &str, by: &str) -> Result<Value, ApiFailure> {
        self.call(
            actor,
            Method::POST,
            &format!("/v1/vessels/{}/extend", encode(vessel)),
            Some(json!({ "by": by })),
        )
        .await
    }

    pub async fn keys(&self, actor: &Actor) -> Result<Value, ApiFailure> {
        self.call(actor, Method::GET, "/v1/me/keys", None).await
    }

    pub async fn add_key(&self, actor: &Actor, key: &str) -> Result<Value, ApiFailure> {
        self.call(
            actor,
            Method::POST,
            "/v1/me/keys",
            Some(json!({ "public_key": key })),
        )
        .await
    }

    pub async fn remove_key(&self, actor: &Actor, fingerprint: &str) -> Result<Value, ApiFailure> {
        self.call(
            actor,
            Method::DELETE,
            &format!("/v1/me/keys/{}", encode(fingerprint)),
            None,
        )
        .await
    }

    pub async fn fleet(&self, actor: &Actor) -> Result<Value, ApiFailure> {
        self.call(actor, Method::GET, "/v1/fleet", None).await
    }

    pub async fn audit(
        &self,
        actor: &Actor,
        user: Option<&str>,
        target: Option<&str>,
    ) -> Result<Value, ApiFailure> {
        let mut query = vec!["limit=20".to_string()];
        if let Some(u) = user {
            query.push(format!("actor={}", encode(u)));
        }
        if let Some(t) = target {
            query.push(format!("target={}", encode(t)));
        }
        self.call(
            actor,
            Method::GET,
            &format!("/v1/audit?{}", query.join("&")),
            None,
        )
        .await
    }

    pub async fn set_user(
        &self,
        actor: &Actor,
        user: &str,
        unix_name: &str,
        uid: Option<u32>,
    ) -> Result<Value, ApiFailure> {
        let mut body = json!({ "unix_name": unix_name });
        if let Some(uid) = uid {
            body["uid"] = json!(uid);
        }
        self.call(
            actor,
            Method::PUT,
            &format!("/v1/users/{}", encode(user)),
            Some(body),
        )
        .await
    }

    pub async fn set_host(
        &self,
        actor: &Actor,
        host: &str,
        drain: bool,
    ) -> Result<Value, ApiFailure> {
        let verb = if drain { "drain" } else { "undrain" };
        self.call(
            actor,
            Method::POST,
            &format!("/v1/hosts/{}/{verb}", encode(host)),
            None,
        )
        .await
    }
}

/// Percent-encodes a path segment.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
