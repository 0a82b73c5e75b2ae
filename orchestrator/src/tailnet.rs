//! The few calls of the Tailscale API v2 (or a Headscale server) the
//! orchestrator makes: mint a single-use, ephemeral, pre-authorised, tagged
//! auth key per vessel; find the device it became; delete device and key
//! when the vessel ends. Rate limits (429 + Retry-After) and server errors
//! are retried; refusals are surfaced with a reason a person can act on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::config::{Secret, TailnetConfig, TailnetProvider};

#[derive(Debug, thiserror::Error)]
pub enum TailnetError {
    /// The API said no: another try would get the same answer.
    #[error("{0}")]
    Refused(String),
    /// Down, slow or rate-limited past our patience.
    #[error("{0}")]
    Unavailable(String),
}

pub struct MintedKey {
    pub id: String,
    pub secret: Secret,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub address: String,
    pub dns_name: Option<String>,
}

pub struct Tailnet {
    config: TailnetConfig,
    http: reqwest::Client,
    oauth: Mutex<Option<(String, Instant)>>,
    /// Dates a Headscale key's expiry.
    clock: Arc<dyn Clock>,
}

/// Longest we honour a Retry-After, and how many times.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
const ATTEMPTS: u32 = 5;

impl Tailnet {
    pub fn new(config: TailnetConfig, clock: Arc<dyn Clock>) -> Self {
        Tailnet {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("http client"),
            oauth: Mutex::new(None),
            clock,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url.trim_end_matches('/'))
    }

    /// The device hostname for a vessel: its name and owner, so two users'
    /// `train`s do not collide.
    pub fn hostname(vessel: &str, owner: &str) -> String {
        let mut h: String = format!("{vessel}-{owner}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        h.truncate(63);
        h.trim_end_matches('-').to_string()
    }

    pub fn tags_for(&self, owner: &str) -> Vec<String> {
        let mut tags = self.config.tags.clone();
        if let Some(t) = &self.config.user_tag {
            tags.push(t.replace("{user}", owner));
        }
        tags
    }

    async fn bearer(&self) -> Result<String, TailnetError> {
        if let Some(key) = &self.config.api_key {
            return Ok(key.expose().to_string());
        }
        let mut cached = self.oauth.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (Some(id), Some(secret)) = (
            &self.config.oauth_client_id,
            &self.config.oauth_client_secret,
        ) else {
            return Err(TailnetError::Refused(
                "no tailnet credentials configured".into(),
            ));
        };
        let resp = self
            .http
            .post(self.url("/api/v2/oauth/token"))
            .form(&[
                ("client_id", id.as_str()),
                ("client_secret", secret.expose()),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .map_err(|e| TailnetError::Unavailable(format!("tailnet OAuth: {e}")))?;
        if !resp.status().is_success() {
            return Err(TailnetError::Refused(format!(
                "the tailnet refused the OAuth client ({}): check tailnet.oauth_client_id and oauth_client_secret",
                resp.status()
            )));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| TailnetError::Unavailable(format!("tailnet OAuth: {e}")))?;
        let token = body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ttl = body["expires_in"]
            .as_u64()
            .unwrap_or(3600)
            .saturating_sub(60);
        *cached = Some((token.clone(), Instant::now() + Duration::from_secs(ttl)));
        Ok(token)
    }

    /// Sends with retries: 429 waits for Retry-After, 5xx backs off.
    async fn send(
        &self,
        what: &str,
        build: impl Fn(&str) -> RequestBuilder,
    ) -> Result<Value, TailnetError> {
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let token = self.bearer().await?;
            let result = build(&token).send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(%what, error = %e, "tailnet API unreachable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    continue;
                }
                Err(e) => return Err(TailnetError::Unavailable(format!("{what}: {e}"))),
            };
            let status = resp.status();
            if status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
            }
            if status == StatusCode::TOO_MANY_REQUESTS && attempt < ATTEMPTS {
                let wait = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(backoff)
                    .min(MAX_RETRY_AFTER);
                tracing::info!(%what, ?wait, "tailnet API rate limit; waiting as asked");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                continue;
            }
            let detail = resp.text().await.unwrap_or_default();
            let detail: String = detail.chars().take(200).collect();
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => TailnetError::Refused(format!(
                    "the tailnet API refused {what} ({status}): check tailnet.api_key (or the OAuth client) and its scopes; it said: {detail}"
                )),
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    TailnetError::Unavailable(format!("the tailnet API kept failing {what} ({s})"))
                }
                s => TailnetError::Refused(format!("the tailnet API refused {what} ({s}): {detail}")),
            });
        }
        Err(TailnetError::Unavailable(format!("{what}: gave up")))
    }

    pub async fn mint_key(&self, owner: &str) -> Result<MintedKey, TailnetError> {
        let tags = self.tags_for(owner);
        let expiry = self.config.key_expiry.duration();
        let body = match self.config.provider {
            TailnetProvider::Tailscale => {
                let url = self.url(&format!("/api/v2/tailnet/{}/keys", self.config.tailnet));
                let payload = json!({
                    "capabilities": { "devices": { "create": {
                        "reusable": false, "ephemeral": true, "preauthorized": true, "tags": tags,
                    }}},
                    "expirySeconds": expiry.as_secs(),
                    "description": "vessel",
                });
                self.send("minting an auth key", |t| {
                    self.http
                        .request(Method::POST, &url)
                        .bearer_auth(t)
                        .json(&payload)
                })
                .await?
            }
            TailnetProvider::Headscale => {
                let url = self.url("/api/v1/preauthkey");
                let expiration = (self.clock.now()
                    + chrono::Duration::from_std(expiry).unwrap_or_default())
                .to_rfc3339();
                let payload = json!({
                    "user": self.config.user, "reusable": false, "ephemeral": true,
                    "expiration": expiration, "aclTags": tags,
                });
                let v = self
                    .send("minting a pre-auth key", |t| {
                        self.http
                            .request(Method::POST, &url)
                            .bearer_auth(t)
                            .json(&payload)
                    })
                    .await?;
                v["preAuthKey"].clone()
            }
        };
        let key = body["key"].as_str().unwrap_or_default();
        if key.is_empty() {
            return Err(TailnetError::Refused(
                "the tailnet API returned no key".into(),
            ));
        }
        Ok(MintedKey {
            id: body["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body["id"].to_string()),
            secret: Secret::new(key),
        })
    }

    pub async fn find_device(&self, hostname: &str) -> Result<Option<Device>, TailnetError> {
        match self.config.provider {
            TailnetProvider::Tailscale => {
                let url = self.url(&format!("/api/v2/tailnet/{}/devices", self.config.tailnet));
                let v = self
                    .send("listing devices", |t| self.http.get(&url).bearer_auth(t))
                    .await?;
                Ok(v["devices"].as_array().into_iter().flatten().find_map(|d| {
                    (d["hostname"] == hostname).then(|| Device {
                        id: d["nodeId"]
                            .as_str()
                            .or(d["id"].as_str())
                            .unwrap_or_default()
                            .into(),
                        address: first_ipv4(&d["addresses"]),
                        dns_name: d["name"].as_str().map(str::to_string),
                    })
                }))
            }
            TailnetProvider::Headscale => {
                let url = self.url("/api/v1/node");
                let v = self
                    .send("listing nodes", |t| self.http.get(&url).bearer_auth(t))
                    .await?;
                Ok(v["nodes"].as_array().into_iter().flatten().find_map(|n| {
                    let name = n["givenName"].as_str().or(n["name"].as_str()).unwrap_or("");
                    (name == hostname).then(|| Device {
                        id: n["id"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| n["id"].to_string()),
                        address: first_ipv4(&n["ipAddresses"]),
                        dns_name: None,
                    })
                }))
            }
        }
        .map(|d| d.filter(|d| !d.address.is_empty()))
    }

    /// Removes a device now rather than waiting for it to expire.
    pub async fn delete_device(&self, id: &str) -> Result<(), TailnetError> {
        let url = match self.config.provider {
            TailnetProvider::Tailscale => self.url(&format!("/api/v2/device/{id}")),
            TailnetProvider::Headscale => self.url(&format!("/api/v1/node/{id}")),
        };
        ignore_not_found(
            self.send("deleting a device", |t| {
                self.http.delete(&url).bearer_auth(t)
            })
            .await,
        )
    }

    /// Revokes an unused key (a vessel that failed before joining).
    pub async fn delete_key(&self, id: &str) -> Result<(), TailnetError> {
        if self.config.provider == TailnetProvider::Headscale {
            // Single-use and short-lived; Headscale has no delete.
            return Ok(());
        }
        let url = self.url(&format!(
            "/api/v2/tailnet/{}/keys/{id}",
            self.config.tailnet
        ));
        ignore_not_found(
            self.send("deleting an auth key", |t| {
                self.http.delete(&url).bearer_auth(t)
            })
            .await,
        )
    }

    pub fn dns_name(&self, device: &Device) -> Option<String> {
        self.config.magic_dns_suffix.as_ref()?;
        device
            .dns_name
            .clone()
            .map(|n| n.trim_end_matches('.').to_string())
    }

    pub fn device_timeout(&self) -> Duration {
        self.config.device_timeout.duration()
    }
}

fn first_ipv4(addresses: &Value) -> String {
    addresses
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .unwrap_or_default()
        .to_string()
}

fn ignore_not_found(r: Result<Value, TailnetError>) -> Result<(), TailnetError> {
    match r {
        Ok(_) => Ok(()),
        Err(TailnetError::Refused(m)) if m.contains("404") => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_dns_labels() {
        assert_eq!(Tailnet::hostname("train", "alice"), "train-alice");
        assert_eq!(Tailnet::hostname("a_b", "x.y"), "a-b-x-y");
        assert!(Tailnet::hostname(&"v".repeat(60), "bob").len() <= 63);
    }
}
