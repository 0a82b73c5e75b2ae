//! Single sign-on by the OAuth 2.0 Device Authorization Grant (RFC 8628)
//! against the issuer the orchestrator names: its discovery document, the
//! device authorization request, polling the token endpoint with the
//! `interval` and `slow_down` rules, and the refresh-token grant. The
//! decision on each poll answer is a pure function (`judge_poll`).

use std::time::Duration;

use serde::Deserialize;
use vessel_api::signin::SignInConfig;

use crate::error::CliError;
use crate::secure_url;

pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The parts of the discovery document the CLI uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub token_endpoint: String,
    pub device_authorization_endpoint: Option<String>,
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default)]
    pub interval: Option<u64>,
}

/// A successful token response.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// Never printed: a token must not reach a terminal or a log.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(…)")
    }
}

#[derive(Debug, Clone, Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// What to do after one poll of the token endpoint.
#[derive(Debug)]
pub enum Poll {
    Done(Tokens),
    /// Ask again after this long.
    Again(Duration),
    Fail(String),
}

/// RFC 8628 §3.5: `authorization_pending` keeps the interval, `slow_down`
/// adds 5 seconds to it for this and every later poll, anything else ends
/// the login.
pub fn judge_poll(status: u16, body: &str, interval: &mut Duration) -> Poll {
    if (200..300).contains(&status) {
        return match serde_json::from_str::<Tokens>(body) {
            Ok(t) => Poll::Done(t),
            Err(e) => Poll::Fail(format!(
                "the identity provider's token answer is unreadable: {e}"
            )),
        };
    }
    let Ok(err) = serde_json::from_str::<OAuthError>(body) else {
        return Poll::Fail(format!("the identity provider answered {status}"));
    };
    match err.error.as_str() {
        "authorization_pending" => Poll::Again(*interval),
        "slow_down" => {
            *interval += Duration::from_secs(5);
            Poll::Again(*interval)
        }
        "access_denied" => Poll::Fail("the sign-in was declined".into()),
        "expired_token" => Poll::Fail("the code expired before it was entered".into()),
        other => Poll::Fail(match err.error_description {
            Some(d) => format!("the identity provider refused: {other} ({d})"),
            None => format!("the identity provider refused: {other}"),
        }),
    }
}

pub struct Provider {
    http: reqwest::Client,
}

impl Provider {
    pub fn new() -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|source| CliError::Http {
                what: "cannot make an HTTP client".into(),
                source,
            })?;
        Ok(Provider { http })
    }

    /// The issuer's discovery document; it and the endpoints it names are
    /// https (or plain http to this machine).
    pub async fn discover(&self, issuer: &str) -> Result<Discovery, CliError> {
        secure_url::check(issuer, "the identity provider")?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| remote(&url, e))?;
        if !resp.status().is_success() {
            return Err(CliError::Remote(format!(
                "the identity provider's discovery document at {url} answered {}",
                resp.status()
            )));
        }
        let text = resp.text().await.map_err(|e| remote(&url, e))?;
        let doc: Discovery =
            serde_json::from_str(&text).map_err(|source| CliError::Unreadable {
                what: format!("the discovery document at {url} is unreadable"),
                source,
            })?;
        // OpenID Connect Discovery §4.3: a document for another issuer is
        // not this one's, whatever it says.
        if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(CliError::Remote(format!(
                "the discovery document at {url} is for `{}`, not `{issuer}`",
                doc.issuer
            )));
        }
        secure_url::check(
            &doc.token_endpoint,
            "the identity provider's token endpoint",
        )?;
        if let Some(device) = &doc.device_authorization_endpoint {
            secure_url::check(device, "the identity provider's device endpoint")?;
        }
        Ok(doc)
    }

    pub async fn device_code(
        &self,
        doc: &Discovery,
        config: &SignInConfig,
    ) -> Result<DeviceCode, CliError> {
        let url = doc
            .device_authorization_endpoint
            .as_deref()
            .ok_or_else(|| {
                CliError::Remote(format!(
                    "the identity provider {} offers no device authorization endpoint",
                    doc.issuer
                ))
            })?;
        let form = [
            ("client_id", config.client_id.as_str()),
            ("scope", config.scope.as_str()),
            // Auth0 reads `audience`, RFC 8707 servers `resource`; each
            // ignores the other.
            ("audience", config.audience.as_str()),
            ("resource", config.audience.as_str()),
        ];
        let resp = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| remote(url, e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| remote(url, e))?;
        if !status.is_success() {
            let why = serde_json::from_str::<OAuthError>(&text)
                .map(|e| e.error)
                .unwrap_or_else(|_| status.to_string());
            return Err(CliError::Remote(format!(
                "the identity provider refused to start a sign-in for client `{}`: {why}",
                config.client_id
            )));
        }
        serde_json::from_str(&text).map_err(|source| CliError::Unreadable {
            what: format!("the device authorization answer from {url} is unreadable"),
            source,
        })
    }

    /// Polls until the person has approved (or declined, or the code ran
    /// out).
    pub async fn poll(
        &self,
        doc: &Discovery,
        client_id: &str,
        code: &DeviceCode,
    ) -> Result<Tokens, CliError> {
        let mut interval = Duration::from_secs(code.interval.unwrap_or(5).max(1));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(code.expires_in.max(1));
        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() > deadline {
                return Err(CliError::Refused(
                    "the code expired before it was entered: run `vessel login` again".into(),
                ));
            }
            let form = [
                ("grant_type", DEVICE_GRANT),
                ("device_code", code.device_code.as_str()),
                ("client_id", client_id),
            ];
            let (status, body) = self.post_form(&doc.token_endpoint, &form).await?;
            match judge_poll(status, &body, &mut interval) {
                Poll::Done(tokens) => return Ok(tokens),
                Poll::Again(_) => continue,
                Poll::Fail(why) => return Err(CliError::Refused(why)),
            }
        }
    }

    /// The refresh-token grant. A refusal (`invalid_grant`: revoked or
    /// expired) ends the session; a network failure does not.
    pub async fn refresh(
        &self,
        token_endpoint: &str,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<Tokens, CliError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ];
        let (status, body) = self.post_form(token_endpoint, &form).await?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&body).map_err(|source| CliError::Unreadable {
                what: "the identity provider's refresh answer is unreadable".into(),
                source,
            });
        }
        if status >= 500 {
            return Err(CliError::Remote(format!(
                "the identity provider at {token_endpoint} answered {status}"
            )));
        }
        let why = serde_json::from_str::<OAuthError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("answer {status}"));
        Err(CliError::SessionEnded {
            why: format!("the identity provider would not renew it: {why}"),
        })
    }

    async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, String), CliError> {
        // A sign-in kept from before this rule still sends no token in the clear.
        secure_url::check(url, "the identity provider's token endpoint")?;
        let resp = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| remote(url, e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| remote(url, e))?;
        Ok((status, body))
    }
}

fn remote(url: &str, source: reqwest::Error) -> CliError {
    CliError::Http {
        what: format!("cannot reach the identity provider at {url}"),
        source,
    }
}

/// The `exp` of a JWT, read without checking the signature: only to know
/// when to renew it (the orchestrator checks it for real).
pub fn jwt_expiry(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["exp"].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_follows_pending_and_slow_down() {
        let mut interval = Duration::from_secs(2);
        let pending = r#"{"error":"authorization_pending"}"#;
        assert!(
            matches!(judge_poll(400, pending, &mut interval), Poll::Again(d) if d.as_secs() == 2)
        );
        let slow = r#"{"error":"slow_down"}"#;
        assert!(matches!(judge_poll(400, slow, &mut interval), Poll::Again(d) if d.as_secs() == 7));
        // The slower pace holds for the polls after it.
        assert!(
            matches!(judge_poll(400, pending, &mut interval), Poll::Again(d) if d.as_secs() == 7)
        );
        let done =
            r#"{"access_token":"a.b.c","refresh_token":"r","expires_in":60,"token_type":"bearer"}"#;
        assert!(
            matches!(judge_poll(200, done, &mut interval), Poll::Done(t) if t.refresh_token.as_deref() == Some("r"))
        );
        for (body, says) in [
            (r#"{"error":"access_denied"}"#, "declined"),
            (r#"{"error":"expired_token"}"#, "expired"),
            (
                r#"{"error":"invalid_client","error_description":"who?"}"#,
                "who?",
            ),
            ("<html>", "answered 400"),
        ] {
            match judge_poll(400, body, &mut interval) {
                Poll::Fail(why) => assert!(why.contains(says), "{body}: {why}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_tokens_debug_form_holds_no_token() {
        let t: Tokens =
            serde_json::from_str(r#"{"access_token":"secret-a","refresh_token":"secret-r"}"#)
                .unwrap();
        assert!(!format!("{t:?}").contains("secret"));
    }

    #[test]
    fn the_expiry_is_read_from_the_payload() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"exp":1700000000}"#)
        );
        assert_eq!(jwt_expiry(&token), Some(1_700_000_000));
        assert_eq!(jwt_expiry("not a token"), None);
    }
}
