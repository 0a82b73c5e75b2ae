//! `[portal]` in the orchestrator's config: sign-in (the dev sign-in and
//! its key file, single sign-on), sessions, the public URL. A leaf: the
//! config reads it without importing the portal.

use serde::Deserialize;
use vessel_common::Secret;

/// `[portal]` in the orchestrator's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// A sign-in form that takes any subject without a password, for the
    /// local quick start. Refused at startup unless `listen` is loopback,
    /// answered only to loopback peers, and only with the key in
    /// `dev_sign_in_key_file`.
    #[serde(default)]
    pub dev_sign_in: bool,
    /// The dev sign-in's key: a file only its owner may read (mode 0600 or
    /// stricter), at least 16 characters. Being on the same machine is not
    /// enough to sign in as anyone (a local proxy, `ssh -L` or another
    /// account reach loopback too); holding this file is.
    pub dev_sign_in_key_file: Option<std::path::PathBuf>,
    /// Where people reach the portal, e.g. `https://vessel.lab`: behind a
    /// TLS proxy, an `https` URL makes cookies `Secure`, adds HSTS and is
    /// the OIDC redirect's base.
    pub public_url: Option<String>,
    /// How long a session lives after sign-in.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// Single sign-on: the authorization code flow with PKCE.
    pub oidc: Option<PortalOidc>,
}

/// `[portal.oidc]`: the portal as a client of one `[[auth.oidc]]` issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalOidc {
    /// Exactly one `auth.oidc[*].issuer`: its tokens are the ones verified.
    pub issuer: String,
    /// The portal's client id there (list it in that issuer's
    /// `allowed_clients`).
    pub client_id: String,
    /// For a confidential client; a public one relies on PKCE alone.
    pub client_secret: Option<Secret>,
    /// What the access token is made out to (`audience` / `resource`): the
    /// issuer's `audience` in `[[auth.oidc]]`.
    pub audience: String,
    /// `https://vessel.lab/sign-in/callback`; by default this request's own
    /// host and scheme.
    pub redirect_url: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into()]
}

impl PortalConfig {
    /// Checks what the config parser cannot: the issuer is one the API
    /// trusts. Errors are (key, message).
    pub fn validate<'a>(
        &self,
        mut issuers: impl Iterator<Item = &'a str>,
    ) -> Result<(), (&'static str, String)> {
        if let Some(o) = &self.oidc {
            if !issuers.any(|i| i == o.issuer) {
                return Err((
                    "portal.oidc.issuer",
                    format!("`{}` is not one of the [[auth.oidc]] issuers", o.issuer),
                ));
            }
            if !o.scopes.iter().any(|s| s == "openid") {
                return Err(("portal.oidc.scopes", "must include `openid`".into()));
            }
        }
        if self.session_hours == 0 {
            return Err(("portal.session_hours", "must be at least 1".into()));
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.ends_with('/') {
                return Err((
                    "portal.public_url",
                    format!("`{url}` must be an http(s) URL without a trailing `/`"),
                ));
            }
        }
        if self.dev_sign_in {
            self.dev_key()?;
        }
        Ok(())
    }

    /// Whether people reach the portal over https (through a proxy, or our
    /// own TLS): cookies are then `Secure` and HSTS is sent.
    pub fn is_https(&self, own_tls: bool) -> bool {
        own_tls
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

    /// The dev sign-in's key, read from its file, which only its owner may
    /// read. Errors are (key, message).
    pub fn dev_key(&self) -> Result<Secret, (&'static str, String)> {
        const KEY: &str = "portal.dev_sign_in_key_file";
        let path = self.dev_sign_in_key_file.as_ref().ok_or((
            KEY,
            "the dev sign-in needs a key file only you can read (e.g. `umask 077; head -c 24 /dev/urandom | base64 > dev-sign-in.key`)".to_string(),
        ))?;
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| (KEY, format!("{shown}: {e}")))?;
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err((
                KEY,
                format!("{shown} may be read by others: `chmod 600 {shown}`"),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| (KEY, format!("{shown}: {e}")))?;
        let key = text.trim();
        if key.chars().count() < 16 {
            return Err((KEY, format!("{shown} holds fewer than 16 characters")));
        }
        Ok(Secret::new(key.to_string()))
    }
}

fn default_session_hours() -> u64 {
    12
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            dev_sign_in: false,
            dev_sign_in_key_file: None,
            public_url: None,
            session_hours: default_session_hours(),
            oidc: None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::PortalConfig;
    use std::os::unix::fs::PermissionsExt;

    /// A dev sign-in key file, 0600, unique to the test.
    pub(crate) fn private_key_file(name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "vessel-dev-key-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, "0123456789abcdef0123\n").expect("writing the key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    #[test]
    fn the_dev_sign_in_needs_a_private_key_file() {
        let mut portal = PortalConfig {
            dev_sign_in: true,
            ..PortalConfig::default()
        };
        let err = portal.validate(std::iter::empty()).unwrap_err();
        assert_eq!(err.0, "portal.dev_sign_in_key_file");
        let path = private_key_file("portal");
        portal.dev_sign_in_key_file = Some(path.clone());
        assert_eq!(
            portal.dev_key().map(|k| k.expose().to_string()),
            Ok("0123456789abcdef0123".to_string())
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = portal.validate(std::iter::empty()).unwrap_err();
        assert!(err.1.contains("may be read by others"), "{err:?}");
        std::fs::write(&path, "short").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(portal.dev_key().is_err());
        let _ = std::fs::remove_file(path);
    }
}
