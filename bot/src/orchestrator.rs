//! The orchestrator's API as the bot uses it: the contract's typed client,
//! with a short-lived token per call that names the acting Slack user. The
//! orchestrator checks every permission again, so the bot decides nothing
//! alone.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::de::DeserializeOwned;
use serde::Serialize;
use vessel_api::audit::{AuditList, AuditQuery};
use vessel_api::claims::Claims;
use vessel_api::events::EventBatch;
use vessel_api::fleet::{FleetStatus, HostChange};
use vessel_api::line::{Limits, Line, SetLimits};
use vessel_api::users::{KeyAdded, KeyList, SetUser, UserView};
use vessel_api::vessels::{CreateVessel, ListQuery, VesselList, VesselView};
use vessel_api::{perm, Client, Span};

use crate::clock::Clock;
use crate::config::BotConfig;

/// Every refusal and failure, typed by the contract.
pub use vessel_api::ClientError as ApiFailure;

/// Who the bot is acting for.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The Slack user id (or `console:NAME`): the orchestrator's subject.
    pub subject: String,
    /// The unix name to ask for on first sight.
    pub unix_name: Option<String>,
    pub admin: bool,
}

const SERVICE_SUBJECT: &str = "vessel-bot";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("auth.private_key cannot be used as a signing key")]
    Key(#[source] jsonwebtoken::errors::Error),
    #[error("orchestrator_url")]
    Client(#[source] ApiFailure),
}

#[derive(Clone)]
pub struct Orchestrator {
    client: Client,
    key: EncodingKey,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// Stamps the tokens (issued at, expires).
    clock: Arc<dyn Clock>,
}

impl Orchestrator {
    pub fn new(config: &BotConfig, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        // Above the longest long poll the bot asks for (25 s).
        let client = Client::new(&config.orchestrator_url, Duration::from_secs(70))
            .map_err(SetupError::Client)?
            .with_via(if config.slack.is_some() {
                "vessel-bot/slack"
            } else {
                "vessel-bot/console"
            });
        Ok(Orchestrator {
            client,
            key: EncodingKey::from_ed_pem(config.auth.private_key.expose().as_bytes())
                .map_err(SetupError::Key)?,
            issuer: config.auth.issuer.clone(),
            audience: config.auth.audience.clone(),
            ttl: config.token_ttl(),
            clock,
        })
    }

    fn token(&self, subject: &str, perms: &[&str], unix_name: Option<&str>) -> String {
        // A clock before 1970 stamps 0: a token long expired.
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or_default();
        let claims = Claims {
            sub: subject.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            perms: perms.iter().map(|p| p.to_string()).collect(),
            unix_name: unix_name.map(str::to_string),
            uid: None,
        };
        // EdDSA over claims of plain strings and numbers, with a key checked
        // at start-up, cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)
            .expect("EdDSA signing with a checked key does not fail")
    }

    /// A token acting as `actor`, with their role's permissions.
    fn as_user(&self, actor: &Actor) -> String {
        let perms = if actor.admin {
            perm::ADMIN
        } else {
            perm::RESEARCHER
        };
        self.token(&actor.subject, perms, actor.unix_name.as_deref())
    }

    /// A token as the bot itself: the outbox and its own state.
    fn as_service(&self) -> String {
        self.token(SERVICE_SUBJECT, perm::BOT_SERVICE, None)
    }

    pub async fn events(&self, after: i64, wait: Duration) -> Result<EventBatch, ApiFailure> {
        self.client.events(&self.as_service(), after, wait).await
    }

    pub async fn state_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiFailure> {
        self.client.bot_state(&self.as_service(), key).await
    }

    pub async fn state_put<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), ApiFailure> {
        self.client
            .put_bot_state(&self.as_service(), key, value)
            .await
    }

    /// The shared replay guard: true the first time any bot replica saw `key`.
    pub async fn once(&self, key: &str) -> Result<bool, ApiFailure> {
        self.client.bot_state_once(&self.as_service(), key).await
    }

    pub async fn create(
        &self,
        actor: &Actor,
        body: &CreateVessel,
    ) -> Result<VesselView, ApiFailure> {
        self.client.create(&self.as_user(actor), body).await
    }

    pub async fn list(&self, actor: &Actor) -> Result<VesselList, ApiFailure> {
        self.client
            .list(&self.as_user(actor), &ListQuery::default())
            .await
    }

    pub async fn list_all(
        &self,
        actor: &Actor,
        owner: Option<&str>,
    ) -> Result<VesselList, ApiFailure> {
        let query = ListQuery {
            all: true,
            ended: false,
            owner: owner.map(str::to_string),
        };
        self.client.list(&self.as_user(actor), &query).await
    }

    pub async fn show(&self, actor: &Actor, vessel: &str) -> Result<VesselView, ApiFailure> {
        self.client.show(&self.as_user(actor), vessel).await
    }

    pub async fn kill(&self, actor: &Actor, vessel: &str) -> Result<VesselView, ApiFailure> {
        self.client.kill(&self.as_user(actor), vessel).await
    }

    pub async fn extend(
        &self,
        actor: &Actor,
        vessel: &str,
        by: Span,
    ) -> Result<VesselView, ApiFailure> {
        self.client.extend(&self.as_user(actor), vessel, by).await
    }

    pub async fn hibernate(&self, actor: &Actor, vessel: &str) -> Result<VesselView, ApiFailure> {
        self.client.hibernate(&self.as_user(actor), vessel).await
    }

    pub async fn wake(
        &self,
        actor: &Actor,
        vessel: &str,
        anywhere: bool,
    ) -> Result<VesselView, ApiFailure> {
        let body = vessel_api::vessels::WakeVessel { anywhere };
        self.client.wake(&self.as_user(actor), vessel, &body).await
    }

    pub async fn keep(&self, actor: &Actor, vessel: &str) -> Result<VesselView, ApiFailure> {
        self.client.keep(&self.as_user(actor), vessel, None).await
    }

    pub async fn keys(&self, actor: &Actor) -> Result<KeyList, ApiFailure> {
        self.client.keys(&self.as_user(actor)).await
    }

    pub async fn add_key(&self, actor: &Actor, key: &str) -> Result<KeyAdded, ApiFailure> {
        self.client.add_key(&self.as_user(actor), key).await
    }

    pub async fn remove_key(&self, actor: &Actor, fingerprint: &str) -> Result<(), ApiFailure> {
        self.client
            .remove_key(&self.as_user(actor), fingerprint)
            .await
    }

    pub async fn fleet(&self, actor: &Actor) -> Result<FleetStatus, ApiFailure> {
        self.client.fleet(&self.as_user(actor)).await
    }

    pub async fn audit(
        &self,
        actor: &Actor,
        user: Option<&str>,
        target: Option<&str>,
    ) -> Result<AuditList, ApiFailure> {
        let query = AuditQuery {
            actor: user.map(str::to_string),
            target: target.map(str::to_string),
            limit: Some(20),
            ..AuditQuery::default()
        };
        self.client.audit(&self.as_user(actor), &query).await
    }

    pub async fn set_user(
        &self,
        actor: &Actor,
        user: &str,
        body: &SetUser,
    ) -> Result<UserView, ApiFailure> {
        self.client.set_user(&self.as_user(actor), user, body).await
    }

    /// Every queue's waiting line.
    pub async fn line(&self, actor: &Actor) -> Result<Line, ApiFailure> {
        self.client.line(&self.as_user(actor)).await
    }

    pub async fn to_front(&self, actor: &Actor, vessel: &str) -> Result<VesselView, ApiFailure> {
        self.client.to_front(&self.as_user(actor), vessel).await
    }

    pub async fn set_limits(
        &self,
        actor: &Actor,
        user: &str,
        queue: &str,
        body: &SetLimits,
    ) -> Result<Limits, ApiFailure> {
        self.client
            .set_limits(&self.as_user(actor), user, queue, body)
            .await
    }

    pub async fn set_host(
        &self,
        actor: &Actor,
        host: &str,
        drain: bool,
    ) -> Result<HostChange, ApiFailure> {
        self.client
            .set_host(&self.as_user(actor), host, drain)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// The rigs' test key (`vessel-testrig`'s `SERVICE_KEY`).
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHc5VKgns2U3K9aMOsHbT4Y0jydLl4SuDnNsiI0Cj7u2
-----END PRIVATE KEY-----
";

    #[test]
    fn tokens_are_stamped_by_the_bots_clock() {
        let config = BotConfig::from_toml_str(&format!(
            "orchestrator_url = \"http://127.0.0.1:8700\"\n\
             [auth]\nprivate_key = \"\"\"\n{KEY}\"\"\"\ntoken_ttl_secs = 120\n"
        ))
        .unwrap();
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let clock = ManualClock::at(t0);
        let orch = Orchestrator::new(&config, Arc::new(clock.clone())).unwrap();
        let claims = |token: String| {
            jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
                .unwrap()
                .claims
        };
        let first = claims(orch.as_service());
        assert_eq!(first.iat, t0.timestamp() as u64);
        assert_eq!(first.exp, t0.timestamp() as u64 + 120);
        clock.advance(chrono::Duration::hours(1));
        let actor = Actor {
            subject: "UALICE".into(),
            unix_name: Some("alice".into()),
            admin: false,
        };
        let later = claims(orch.as_user(&actor));
        assert_eq!(later.iat, t0.timestamp() as u64 + 3600);
        assert_eq!(later.sub, "UALICE");
    }
}
