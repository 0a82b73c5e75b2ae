//! The few calls of the Tailscale API v2 (or a Headscale server) the
//! orchestrator makes: mint a single-use, ephemeral, pre-authorised, tagged
//! auth key per vessel; find the device it became; delete device and key
//! when the vessel ends. Rate limits (429 + Retry-After) and server errors
//! are retried; refusals are surfaced with a reason a person can act on.
//!
//! Any tailnet member can name a device anything, so a device is taken for
//! a vessel only when it carries the vessel's unique hostname, every tag the
//! key gives, was made no earlier than the key, belongs to this tailnet and
//! (Headscale) registered with that very key. Only a device matched so is
//! ever recorded, hence ever deleted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

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
    /// When the control server made the key, by its own clock (so ours may
    /// be off): the device the key becomes is made no earlier.
    pub created: DateTime<Utc>,
    /// The tags the key gives the device it becomes.
    pub tags: Vec<String>,
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

    /// The device hostname for a vessel: readable (its name and owner, cut
    /// short) and unique, since it ends in the vessel's whole id — names and
    /// owners alone run together (`train` of `j-smith`, `train-j` of
    /// `smith`). At most 63 characters, a DNS label.
    pub fn hostname(vessel_id: Uuid, vessel: &str, owner: &str) -> String {
        let readable: String = format!("{vessel}-{owner}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(30)
            .collect();
        let readable = readable.trim_matches('-');
        let readable = if readable.is_empty() {
            "vessel"
        } else {
            readable
        };
        format!("{readable}-{}", vessel_id.simple())
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
        // Only if the server does not say when it made the key.
        let asked_at = self.clock.now();
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
            id: id_text(&body["id"]),
            secret: Secret::new(key),
            created: timestamp(&body["created"])
                .or_else(|| timestamp(&body["createdAt"]))
                .unwrap_or(asked_at),
            tags,
        })
    }

    /// The device `key` became under `hostname`, once it is listed with an
    /// address. More than one candidate is refused: one of them is not ours,
    /// and guessing could hand the vessel's identity to it.
    pub async fn find_device(
        &self,
        hostname: &str,
        key: &MintedKey,
    ) -> Result<Option<Device>, TailnetError> {
        let listed: Vec<Listed> = match self.config.provider {
            TailnetProvider::Tailscale => {
                let url = self.url(&format!("/api/v2/tailnet/{}/devices", self.config.tailnet));
                let v = self
                    .send("listing devices", |t| self.http.get(&url).bearer_auth(t))
                    .await?;
                v["devices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(Listed::tailscale)
                    .collect()
            }
            TailnetProvider::Headscale => {
                let url = self.url("/api/v1/node");
                let v = self
                    .send("listing nodes", |t| self.http.get(&url).bearer_auth(t))
                    .await?;
                v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(Listed::headscale)
                    .collect()
            }
        };
        pick(listed, hostname, key)
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

/// One entry of a device list, as far as matching needs it.
#[derive(Debug, Clone)]
struct Listed {
    device: Device,
    hostname: String,
    tags: Vec<String>,
    created: Option<DateTime<Utc>>,
    /// Headscale: the id of the pre-auth key the node registered with.
    key_id: Option<String>,
    /// Tailscale: shared in from another tailnet.
    external: bool,
}

impl Listed {
    fn tailscale(d: &Value) -> Listed {
        Listed {
            device: Device {
                id: d["nodeId"]
                    .as_str()
                    .or(d["id"].as_str())
                    .unwrap_or_default()
                    .into(),
                address: first_ipv4(&d["addresses"]),
                dns_name: d["name"].as_str().map(str::to_string),
            },
            hostname: d["hostname"].as_str().unwrap_or_default().into(),
            tags: strings(&d["tags"]),
            created: timestamp(&d["created"]),
            key_id: None,
            external: d["isExternal"].as_bool().unwrap_or(false),
        }
    }

    fn headscale(n: &Value) -> Listed {
        // Tags a pre-auth key gives are "forced"; newer servers list `tags`.
        let mut tags = strings(&n["forcedTags"]);
        tags.extend(strings(&n["validTags"]));
        tags.extend(strings(&n["tags"]));
        let key_id = &n["preAuthKey"]["id"];
        Listed {
            device: Device {
                id: id_text(&n["id"]),
                address: first_ipv4(&n["ipAddresses"]),
                dns_name: None,
            },
            hostname: n["givenName"]
                .as_str()
                .or(n["name"].as_str())
                .unwrap_or_default()
                .into(),
            tags,
            created: timestamp(&n["createdAt"]),
            key_id: (!key_id.is_null()).then(|| id_text(key_id)),
            external: false,
        }
    }

    /// Whether this is the device `key` became under `hostname`.
    fn is_from(&self, hostname: &str, key: &MintedKey) -> bool {
        self.hostname.eq_ignore_ascii_case(hostname)
            && !self.external
            && key.tags.iter().all(|t| self.tags.contains(t))
            && self.created.is_some_and(|c| c >= key.created)
            && self.key_id.as_ref().is_none_or(|id| *id == key.id)
    }
}

/// The one device `key` became, if listed yet (with an address).
fn pick(
    listed: Vec<Listed>,
    hostname: &str,
    key: &MintedKey,
) -> Result<Option<Device>, TailnetError> {
    let mut ours: Vec<Device> = listed
        .into_iter()
        .filter(|d| d.is_from(hostname, key))
        .map(|d| d.device)
        .collect();
    match ours.len() {
        0 => Ok(None),
        1 => Ok(ours.pop().filter(|d| !d.address.is_empty())),
        n => Err(TailnetError::Refused(format!(
            "{n} devices ({}) claim to be this vessel ({hostname}, tagged, made after its key): \
             one is not ours, so none is taken",
            ours.iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An id the API gives as a string or (Headscale, some versions) a number.
fn id_text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
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

    const ID: &str = "3f2a0c1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn hostnames_are_dns_labels() {
        let id: Uuid = ID.parse().unwrap();
        assert_eq!(
            Tailnet::hostname(id, "train", "alice"),
            "train-alice-3f2a0c1e5b6d4e7f8a9b0c1d2e3f4a5b"
        );
        assert!(Tailnet::hostname(id, "a_b", "x.y").starts_with("a-b-x-y-"));
        let long = Tailnet::hostname(id, &"v".repeat(60), "bob");
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with(&id.simple().to_string()));
        assert!(Tailnet::hostname(id, "_", "-").starts_with("vessel-"));
    }

    #[test]
    fn two_vessels_whose_names_and_owners_run_together_get_different_hostnames() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_ne!(
            Tailnet::hostname(a, "train", "j-smith"),
            Tailnet::hostname(b, "train-j", "smith")
        );
        assert_ne!(
            Tailnet::hostname(a, "a_b", "c"),
            Tailnet::hostname(b, "a-b", "c")
        );
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn key() -> MintedKey {
        MintedKey {
            id: "k1".into(),
            secret: Secret::new("tskey-auth-k1"),
            created: at("2026-11-28T10:00:00Z"),
            tags: vec!["tag:vessel".into(), "tag:vessel-alice".into()],
        }
    }

    fn device(id: &str, tags: &[&str], created: &str) -> Value {
        json!({ "nodeId": id, "hostname": "train-alice-x", "name": "train-alice-x.ts.net",
                "addresses": ["100.64.0.9", "fd7a::9"], "tags": tags, "created": created })
    }

    fn pick_tailscale(devices: &[Value]) -> Result<Option<Device>, TailnetError> {
        pick(
            devices.iter().map(Listed::tailscale).collect(),
            "train-alice-x",
            &key(),
        )
    }

    const TAGS: &[&str] = &["tag:vessel", "tag:vessel-alice"];

    #[test]
    fn a_device_with_the_vessels_hostname_is_ours_only_if_tagged_new_and_a_member() {
        let ours = device("n-ours", TAGS, "2026-11-28T10:00:05Z");
        let untagged = device("n-laptop", &[], "2026-11-28T10:00:04Z");
        let other_tags = device("n-ci", &["tag:ci"], "2026-11-28T10:00:04Z");
        let one_tag = device("n-half", &["tag:vessel"], "2026-11-28T10:00:04Z");
        let older = device("n-old", TAGS, "2026-11-28T09:59:59Z");
        let mut shared = device("n-shared", TAGS, "2026-11-28T10:00:04Z");
        shared["isExternal"] = json!(true);
        let mut undated = device("n-undated", TAGS, "");
        undated["created"] = Value::Null;
        let impostors = [untagged, other_tags, one_tag, older, shared, undated];
        for impostor in &impostors {
            assert!(
                pick_tailscale(std::slice::from_ref(impostor))
                    .unwrap()
                    .is_none(),
                "{impostor}"
            );
        }
        let mut all = impostors.to_vec();
        all.push(ours.clone());
        assert_eq!(pick_tailscale(&all).unwrap().unwrap().id, "n-ours");
        // The same second as the key counts (the API's clock is in seconds).
        let same_second = device("n-ours", TAGS, "2026-11-28T10:00:00Z");
        assert!(pick_tailscale(&[same_second]).unwrap().is_some());
    }

    #[test]
    fn two_devices_that_both_look_like_ours_are_refused() {
        let a = device("n-a", TAGS, "2026-11-28T10:00:05Z");
        let b = device("n-b", TAGS, "2026-11-28T10:00:06Z");
        let err = pick_tailscale(&[a, b]).unwrap_err().to_string();
        assert!(err.contains("n-a") && err.contains("n-b"), "{err}");
    }

    #[test]
    fn a_headscale_node_must_have_registered_with_our_key() {
        let node = |key_id: &str| {
            json!({ "id": "7", "givenName": "train-alice-x", "ipAddresses": ["100.64.0.7"],
                    "forcedTags": TAGS, "createdAt": "2026-11-28T10:00:03.5Z",
                    "preAuthKey": { "id": key_id } })
        };
        let pick_one = |n: Value| pick(vec![Listed::headscale(&n)], "train-alice-x", &key());
        assert_eq!(pick_one(node("k1")).unwrap().unwrap().id, "7");
        assert!(pick_one(node("k2")).unwrap().is_none());
    }

    #[test]
    fn a_device_not_yet_given_an_address_is_not_yet_found() {
        let mut d = device("n-ours", TAGS, "2026-11-28T10:00:05Z");
        d["addresses"] = json!([]);
        assert!(pick_tailscale(&[d]).unwrap().is_none());
    }
}
