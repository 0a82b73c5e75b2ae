//! The sign-in, kept in the user's config dir (`credentials.json`, mode
//! 0600 in a 0700 directory): which orchestrator, the access token, and for
//! single sign-on the refresh token and where to renew it. An access token
//! about to expire is renewed before a call; a refusal to renew ends the
//! session with the login hint. Tokens are never printed.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::oidc::{self, Tokens};
use crate::paths;

/// Renew this long before the access token expires, so a call is never
/// sent with a token that runs out on the way.
const RENEW_BEFORE_SECS: u64 = 30;

#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The orchestrator's URL.
    pub server: String,
    pub access_token: String,
    /// Unix seconds; None when unknown (never renewed ahead of time).
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Single sign-on only; a token file's token has no way to renew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoSession>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SsoSession {
    pub issuer: String,
    pub client_id: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

pub fn credentials_path() -> Result<PathBuf, CliError> {
    Ok(paths::config_dir()?.join("credentials.json"))
}

impl Credentials {
    pub fn from_tokens(server: String, tokens: &Tokens, sso: Option<SsoSession>) -> Self {
        let expires_at =
            oidc::jwt_expiry(&tokens.access_token).or_else(|| tokens.expires_in.map(|s| now() + s));
        Credentials {
            server,
            access_token: tokens.access_token.clone(),
            expires_at,
            sso,
        }
    }

    /// The stored sign-in, if any.
    pub fn load() -> Result<Option<Credentials>, CliError> {
        let path = credentials_path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CliError::io(format!("cannot read {}", path.display()))(e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            CliError::user(format!(
                "{} is damaged ({e}): run `vessel login` again",
                path.display()
            ))
        })
    }

    pub fn save(&self) -> Result<PathBuf, CliError> {
        let path = credentials_path()?;
        let dir = path.parent().expect("a file in the config dir");
        paths::private_dir(dir)?;
        let json = serde_json::to_vec_pretty(self).expect("plain fields serialise");
        paths::write_private(&path, &json, 0o600)?;
        Ok(path)
    }

    pub fn remove() -> Result<bool, CliError> {
        let path = credentials_path()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CliError::io(format!("cannot remove {}", path.display()))(e)),
        }
    }

    fn needs_renewal(&self, now: u64) -> bool {
        self.expires_at
            .is_some_and(|exp| exp <= now + RENEW_BEFORE_SECS)
    }

    /// A token good for the next call: renewed (and saved) when it is about
    /// to expire.
    pub async fn fresh_token(&mut self) -> Result<String, CliError> {
        if !self.needs_renewal(now()) {
            return Ok(self.access_token.clone());
        }
        let Some(sso) = self.sso.clone() else {
            if self.expires_at.is_some_and(|exp| exp <= now()) {
                return Err(CliError::SessionEnded {
                    why: "the token from the token file has expired".into(),
                });
            }
            return Ok(self.access_token.clone());
        };
        let Some(refresh) = sso.refresh_token.as_deref() else {
            return Err(CliError::SessionEnded {
                why: "the access token expired and the identity provider gave no refresh token"
                    .into(),
            });
        };
        let provider = oidc::Provider::new()?;
        let tokens = provider
            .refresh(&sso.token_endpoint, &sso.client_id, refresh)
            .await?;
        let mut renewed = Credentials::from_tokens(self.server.clone(), &tokens, Some(sso));
        if let Some(s) = renewed.sso.as_mut() {
            // A provider that does not rotate refresh tokens sends none back.
            if tokens.refresh_token.is_some() {
                s.refresh_token = tokens.refresh_token.clone();
            }
        }
        renewed.save()?;
        *self = renewed;
        Ok(self.access_token.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_starts_shortly_before_expiry() {
        let c = Credentials {
            server: "http://x".into(),
            access_token: "t".into(),
            expires_at: Some(1000),
            sso: None,
        };
        assert!(!c.needs_renewal(900));
        assert!(c.needs_renewal(975));
        assert!(c.needs_renewal(2000));
        assert!(!format!("{c:?}").contains("\"t\""));
    }
}
