//! A signed-in session with one orchestrator, the context every command
//! that needs a sign-in runs in: the contract's `Client`, a fresh token per
//! call, `--json` or text, and a vessel looked up by name (an unknown one is
//! named along with what exists). It knows no command, so the commands,
//! `ssh` and `wait` can all use it without using each other.

use std::time::Duration;

use serde::Serialize;
use vessel_api::vessels::ListQuery;
use vessel_api::{Client, ClientError, ErrorCode};

use crate::error::{from_client, CliError};
use crate::secure_url;
use crate::session::Credentials;
use crate::vessel::{Vessel, Vessels};

/// A signed-in session with one orchestrator.
pub struct Ctx {
    pub server: String,
    pub client: Client,
    creds: Credentials,
    pub json: bool,
}

/// The contract's client for `server`, telling the audit log it is us;
/// over https, or plain http to this machine only.
pub fn client_for(server: &str) -> Result<Client, CliError> {
    secure_url::check(server, "the orchestrator")?;
    Client::new(server, Duration::from_secs(30))
        .map(|c| c.with_via("vessel-cli"))
        .map_err(|e| CliError::user(e.to_string()))
}

impl Ctx {
    /// The stored sign-in, refused when `--server` names another
    /// orchestrator than the one signed in to.
    pub fn open(server: Option<&str>, json: bool) -> Result<Ctx, CliError> {
        let creds = Credentials::load()?.ok_or(CliError::NotLoggedIn)?;
        if let Some(server) = server {
            if server.trim_end_matches('/') != creds.server.trim_end_matches('/') {
                return Err(CliError::user(format!(
                    "you are signed in to {}, not {server}: run `vessel login --server {server}`",
                    creds.server
                )));
            }
        }
        Ok(Ctx {
            server: creds.server.clone(),
            client: client_for(&creds.server)?,
            creds,
            json,
        })
    }

    pub async fn token(&mut self) -> Result<String, CliError> {
        self.creds.fresh_token().await
    }

    /// `--json` prints the value; otherwise the text.
    pub fn show<T: Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", text(value));
        }
    }

    /// A vessel by name or id; an unknown one is named along with what
    /// exists.
    pub async fn vessel(&mut self, name: &str) -> Result<Vessel, CliError> {
        let token = self.token().await?;
        match self.client.show(&token, name).await {
            Ok(v) => Vessel::parse(v),
            Err(e) => Err(self
                .about(name, &format!("cannot read vessel {name}"), e)
                .await),
        }
    }

    /// The vessels `query` asks for, every one's SSH access parsed.
    pub async fn vessels(&mut self, query: &ListQuery) -> Result<Vessels, CliError> {
        let token = self.token().await?;
        let list = self
            .client
            .list(&token, query)
            .await
            .map_err(|e| from_client("cannot list vessels", e))?;
        Ok(Vessels {
            vessels: Vessel::parse_all(list.vessels)?,
        })
    }

    /// "no vessel `x`; yours are a, b".
    pub async fn unknown(&mut self, name: &str) -> CliError {
        let names = match self.token().await {
            Ok(token) => self
                .client
                .list(&token, &ListQuery::default())
                .await
                .map(|l| {
                    l.vessels
                        .into_iter()
                        .map(|v| v.name.to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        CliError::NotFound(if names.is_empty() {
            format!("no vessel `{name}`: you have none (vessel create …)")
        } else {
            format!("no vessel `{name}`; yours: {}", names.join(", "))
        })
    }

    /// Maps a refusal about `name` (404 → what exists).
    pub async fn about(&mut self, name: &str, what: &str, e: ClientError) -> CliError {
        if e.code() == Some(ErrorCode::NotFound) {
            return self.unknown(name).await;
        }
        from_client(what, e)
    }
}
