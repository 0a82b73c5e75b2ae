//! A typed client of the orchestrator's API for every front door. Each call
//! takes the bearer token to act with (the bot mints one per user and call;
//! the CLI holds the user's own), sends a typed body and reads a typed
//! answer; a refusal becomes `ClientError::Api` with the typed error body.

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

use crate::audit::{AuditList, AuditQuery};
use crate::error::{ErrorBody, ErrorCode};
use crate::events::EventBatch;
use crate::fleet::{FleetStatus, HostChange};
use crate::line::{Limits, Line, SetLimits};
use crate::signin::SignInConfig;
use crate::units::Span;
use crate::users::{
    AddKey, IdentityLink, KeyAdded, KeyList, LinkIdentity, LinkList, Me, SetUser, UserList,
    UserView,
};
use crate::vessels::{CreateVessel, Extend, Keep, ListQuery, VesselList, VesselView, WakeVessel};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The orchestrator answered, and refused.
    #[error("{}", .body.message)]
    Api { status: u16, body: ErrorBody },
    #[error("the orchestrator at {url} did not answer: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the orchestrator's answer from {url} is not one this client understands: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{0}` is not a usable orchestrator URL")]
    BadUrl(String),
}

impl ClientError {
    /// The orchestrator's error code, when it answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The request field the orchestrator named as wrong.
    pub fn field(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => body.field.as_deref(),
            _ => None,
        }
    }

    /// The orchestrator could not be reached or misbehaved: not the user's doing.
    pub fn is_server_side(&self) -> bool {
        !matches!(self, ClientError::Api { status, .. } if *status < 500)
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// Told to the audit log as where requests come from (`vessel-bot/slack`).
    via: Option<String>,
}

impl Client {
    /// `timeout` bounds each call; long polls ask for less than it.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, ClientError> {
        let base = Url::parse(base).map_err(|_| ClientError::BadUrl(base.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(ClientError::BadUrl(base.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| ClientError::Transport {
                url: base.to_string(),
                source,
            })?;
        Ok(Client {
            http,
            base,
            via: None,
        })
    }

    pub fn with_via(mut self, via: impl Into<String>) -> Self {
        self.via = Some(via.into());
        self
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of a path made of segments, each percent-encoded.
    fn url(&self, segments: &[&str], query: Option<String>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url.set_query(query.as_deref().filter(|q| !q.is_empty()));
        url
    }

    async fn send<T: DeserializeOwned>(
        &self,
        token: &str,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> Result<T, ClientError> {
        let text = self.exchange(token, method, url.clone(), body).await?;
        // A 204 has no body; `()` and `Option<T>` read it as null.
        let text = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(|source| ClientError::Decode {
            url: url.to_string(),
            source,
        })
    }

    async fn exchange(
        &self,
        token: &str,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> Result<String, ClientError> {
        let transport = |source| ClientError::Transport {
            url: url.to_string(),
            source,
        };
        let mut req = self.http.request(method, url.clone()).bearer_auth(token);
        if let Some(via) = &self.via {
            req = req.header("x-vessel-via", via);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if status.is_success() {
            return Ok(text);
        }
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
            // Not our error body (a proxy's page, a panic): say what came back.
            error: if status.is_server_error() {
                ErrorCode::Internal
            } else {
                ErrorCode::Unknown
            },
            message: format!(
                "the orchestrator answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ),
            field: None,
        });
        Err(ClientError::Api {
            status: status.as_u16(),
            body,
        })
    }

    /// Where to sign in (public: no token). None when the orchestrator has
    /// no single sign-on for the CLI.
    pub async fn sign_in_config(&self) -> Result<Option<SignInConfig>, ClientError> {
        let url = self.url(&["v1", "auth", "config"], None);
        let transport = |source| ClientError::Transport {
            url: url.to_string(),
            source,
        };
        let resp = self.http.get(url.clone()).send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                body: serde_json::from_str(&text).unwrap_or_else(|_| ErrorBody {
                    error: ErrorCode::Internal,
                    message: format!("the orchestrator answered {status}"),
                    field: None,
                }),
            });
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| ClientError::Decode {
                url: url.to_string(),
                source,
            })
    }

    pub async fn me(&self, token: &str) -> Result<Me, ClientError> {
        self.send(token, Method::GET, self.url(&["v1", "me"], None), None)
            .await
    }

    pub async fn keys(&self, token: &str) -> Result<KeyList, ClientError> {
        let url = self.url(&["v1", "me", "keys"], None);
        self.send(token, Method::GET, url, None).await
    }

    pub async fn add_key(&self, token: &str, public_key: &str) -> Result<KeyAdded, ClientError> {
        let body = AddKey {
            public_key: public_key.to_string(),
        };
        let url = self.url(&["v1", "me", "keys"], None);
        self.send(token, Method::POST, url, Some(json(&body))).await
    }

    pub async fn remove_key(&self, token: &str, fingerprint: &str) -> Result<(), ClientError> {
        let url = self.url(&["v1", "me", "keys", fingerprint], None);
        self.exchange(token, Method::DELETE, url, None)
            .await
            .map(|_| ())
    }

    pub async fn create(
        &self,
        token: &str,
        request: &CreateVessel,
    ) -> Result<VesselView, ClientError> {
        let url = self.url(&["v1", "vessels"], None);
        self.send(token, Method::POST, url, Some(json(request)))
            .await
    }

    pub async fn list(&self, token: &str, query: &ListQuery) -> Result<VesselList, ClientError> {
        let q = query_string(&[
            ("all", query.all.then(|| "true".to_string())),
            ("ended", query.ended.then(|| "true".to_string())),
            ("owner", query.owner.clone()),
        ]);
        let url = self.url(&["v1", "vessels"], Some(q));
        self.send(token, Method::GET, url, None).await
    }

    /// A vessel by name (the caller's) or id.
    pub async fn show(&self, token: &str, vessel: &str) -> Result<VesselView, ClientError> {
        let url = self.url(&["v1", "vessels", vessel], None);
        self.send(token, Method::GET, url, None).await
    }

    pub async fn kill(&self, token: &str, vessel: &str) -> Result<VesselView, ClientError> {
        let url = self.url(&["v1", "vessels", vessel], None);
        self.send(token, Method::DELETE, url, None).await
    }

    pub async fn extend(
        &self,
        token: &str,
        vessel: &str,
        by: Span,
    ) -> Result<VesselView, ClientError> {
        let url = self.url(&["v1", "vessels", vessel, "extend"], None);
        self.send(token, Method::POST, url, Some(json(&Extend { by })))
            .await
    }

    pub async fn keep(
        &self,
        token: &str,
        vessel: &str,
        for_: Option<Span>,
    ) -> Result<VesselView, ClientError> {
        let url = self.url(&["v1", "vessels", vessel, "keep"], None);
        self.send(token, Method::POST, url, Some(json(&Keep { for_ })))
            .await
    }

    /// Hibernates a running vessel: its processes end, its disk is kept.
    pub async fn hibernate(&self, token: &str, vessel: &str) -> Result<VesselView, ClientError> {
        let url = self.url(&["v1", "vessels", vessel, "hibernate"], None);
        self.send(token, Method::POST, url, None).await
    }

    /// Wakes a hibernated vessel: it joins the line for its own host.
    pub async fn wake(
        &self,
        token: &str,
        vessel: &str,
        body: &WakeVessel,
    ) -> Result<VesselView, ClientError> {
        let url = self.url(&["v1", "vessels", vessel, "wake"], None);
        self.send(token, Method::POST, url, Some(json(body))).await
    }

    pub async fn fleet(&self, token: &str) -> Result<FleetStatus, ClientError> {
        let url = self.url(&["v1", "fleet"], None);
        self.send(token, Method::GET, url, None).await
    }

    pub async fn set_host(
        &self,
        token: &str,
        host: &str,
        drain: bool,
    ) -> Result<HostChange, ClientError> {
        let verb = if drain { "drain" } else { "undrain" };
        let url = self.url(&["v1", "hosts", host, verb], None);
        self.send(token, Method::POST, url, None).await
    }

    pub async fn set_user(
        &self,
        token: &str,
        subject: &str,
        body: &SetUser,
    ) -> Result<UserView, ClientError> {
        let url = self.url(&["v1", "users", subject], None);
        self.send(token, Method::PUT, url, Some(json(body))).await
    }

    /// The SSO identities linked to a person (admins).
    pub async fn links(&self, token: &str, user: &str) -> Result<LinkList, ClientError> {
        let url = self.url(&["v1", "users", user, "links"], None);
        self.send(token, Method::GET, url, None).await
    }

    /// Links an SSO identity to a person (admins): its tokens act as them.
    pub async fn link(
        &self,
        token: &str,
        user: &str,
        body: &LinkIdentity,
    ) -> Result<IdentityLink, ClientError> {
        let url = self.url(&["v1", "users", user, "links"], None);
        self.send(token, Method::PUT, url, Some(json(body))).await
    }

    /// Removes a person's link to an SSO identity (admins).
    pub async fn unlink(
        &self,
        token: &str,
        user: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<(), ClientError> {
        let url = self.url(&["v1", "users", user, "links", issuer, subject], None);
        self.exchange(token, Method::DELETE, url, None)
            .await
            .map(|_| ())
    }

    /// Every queue's waiting line, in order.
    pub async fn line(&self, token: &str) -> Result<Line, ClientError> {
        let url = self.url(&["v1", "line"], None);
        self.send(token, Method::GET, url, None).await
    }

    /// Moves a waiting request to the front of its queue's line (admins).
    pub async fn to_front(&self, token: &str, vessel: &str) -> Result<VesselView, ClientError> {
        let url = self.url(&["v1", "line", vessel, "front"], None);
        self.send(token, Method::POST, url, None).await
    }

    /// Sets (or, with both `None`, clears) one person's limits in a queue.
    pub async fn set_limits(
        &self,
        token: &str,
        subject: &str,
        queue: &str,
        body: &SetLimits,
    ) -> Result<Limits, ClientError> {
        let url = self.url(&["v1", "users", subject, "limits", queue], None);
        self.send(token, Method::PUT, url, Some(json(body))).await
    }

    /// Everyone who has used Vessel, with their use and limits (admins).
    pub async fn users(&self, token: &str) -> Result<UserList, ClientError> {
        let url = self.url(&["v1", "users"], None);
        self.send(token, Method::GET, url, None).await
    }

    pub async fn audit(&self, token: &str, query: &AuditQuery) -> Result<AuditList, ClientError> {
        let q = query_string(&[
            ("actor", query.actor.clone()),
            ("target", query.target.clone()),
            ("action", query.action.clone()),
            ("outcome", query.outcome.clone()),
            ("limit", query.limit.map(|l| l.to_string())),
        ]);
        let url = self.url(&["v1", "audit"], Some(q));
        self.send(token, Method::GET, url, None).await
    }

    /// The outbox after `after`, waiting up to `wait` for something new.
    pub async fn events(
        &self,
        token: &str,
        after: i64,
        wait: Duration,
    ) -> Result<EventBatch, ClientError> {
        let query = format!("after={after}&wait={}", wait.as_secs());
        let url = self.url(&["v1", "events"], Some(query));
        self.send(token, Method::GET, url, None).await
    }

    /// The bot's own state: free-form JSON it alone reads.
    pub async fn bot_state<T: DeserializeOwned>(
        &self,
        token: &str,
        key: &str,
    ) -> Result<Option<T>, ClientError> {
        let url = self.url(&["v1", "bot", "state", key], None);
        match self.send(token, Method::GET, url, None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Claims a one-time key: true the first time anyone claimed it.
    pub async fn bot_state_once(&self, token: &str, key: &str) -> Result<bool, ClientError> {
        let url = self.url(&["v1", "bot", "once", key], None);
        match self.exchange(token, Method::POST, url, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(ErrorCode::Replayed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn put_bot_state<T: Serialize + Sync>(
        &self,
        token: &str,
        key: &str,
        value: &T,
    ) -> Result<(), ClientError> {
        let url = self.url(&["v1", "bot", "state", key], None);
        let body = serde_json::to_string(value).map_err(|source| ClientError::Decode {
            url: url.to_string(),
            source,
        })?;
        self.exchange(token, Method::PUT, url, Some(body))
            .await
            .map(|_| ())
    }
}

/// `a=1&b=2` of the pairs that have a value. (The serializer is not `Send`,
/// so it must not live across an await.)
fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value {
            q.append_pair(key, value);
        }
    }
    q.finish()
}

/// A request body. Our request types always serialise (plain fields,
/// string map keys), so this cannot fail.
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        let c = Client::new("http://127.0.0.1:8700/", Duration::from_secs(1)).unwrap();
        let url = c.url(&["v1", "me", "keys", "SHA256:a/b+c d"], None);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8700/v1/me/keys/SHA256:a%2Fb+c%20d"
        );
        let prefixed = Client::new("http://h/api", Duration::from_secs(1)).unwrap();
        assert_eq!(
            prefixed.url(&["v1", "fleet"], Some("x=1".into())).as_str(),
            "http://h/api/v1/fleet?x=1"
        );
    }
}
