//! The bot's configuration: one TOML file plus `VESSEL_BOT_…` environment
//! overrides, checked at start-up with errors naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What is wrong with the config. Each says what failed; the TOML or I/O
/// error it wraps (its `source`) says why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config {origin} is not a bot config")]
    Parse {
        /// The file, or where the text came from.
        origin: String,
        source: toml::de::Error,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

pub use vessel_common::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// Where the orchestrator's API is.
    pub orchestrator_url: String,
    pub auth: AuthConfig,
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    /// The queue `/vessel create` uses when none is named.
    pub default_queue: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The service's Ed25519 private key (PEM, or `{ file = … }`); the
    /// orchestrator holds only its public half.
    pub private_key: Secret,
    #[serde(default = "issuer")]
    pub issuer: String,
    #[serde(default = "audience")]
    pub audience: String,
    /// Lifetime of the tokens the bot mints per request (the orchestrator
    /// refuses ones longer than its `auth.max_token_ttl`).
    #[serde(default = "token_ttl")]
    pub token_ttl_secs: u64,
}

fn issuer() -> String {
    "vessel-bot".into()
}
fn audience() -> String {
    "vessel-orchestrator".into()
}
fn token_ttl() -> u64 {
    300
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    /// Slash commands and interactivity POSTed to our HTTP endpoint.
    #[default]
    Http,
    /// A websocket to Slack: no public URL needed (behind a lab firewall).
    Socket,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub mode: SlackMode,
    #[serde(default = "listen")]
    pub listen: SocketAddr,
    pub signing_secret: Secret,
    /// `xoxb-…`
    pub bot_token: Secret,
    /// `xapp-…`, Socket Mode only.
    pub app_token: Option<Secret>,
    /// The Web API base (tests point it at a fake).
    #[serde(default = "api_url")]
    pub api_url: String,
    /// Slack user ids allowed to run `/fleet`.
    #[serde(default)]
    pub admins: Vec<String>,
    /// The workspace (`T…`) this bot serves; requests from any other
    /// workspace the app is installed in are refused. Unset serves any.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Where host and GPU alerts go.
    pub admin_channel: Option<String>,
}

impl SlackConfig {
    /// Whether start-up warns that every workspace is served: HTTP mode
    /// without `team_id`, where a request signed for any workspace the app
    /// is installed in is acted on. (Socket Mode is not warned about; the
    /// check holds there too once `team_id` is set.)
    pub fn serves_any_workspace(&self) -> bool {
        self.mode == SlackMode::Http && self.team_id.is_none()
    }
}

fn listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 3000))
}
fn api_url() -> String {
    "https://slack.com/api".into()
}

impl BotConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let parse = |source| ConfigError::Parse {
            origin: path.display().to_string(),
            source,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(parse)?;
        vessel_common::apply_env_overrides(&mut table, "VESSEL_BOT_", std::env::vars());
        let config: BotConfig = toml::Value::Table(table).try_into().map_err(parse)?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: BotConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            origin: "text".into(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if url::Url::parse(&self.orchestrator_url).is_err() {
            return Err(invalid("orchestrator_url", "not a URL"));
        }
        if jsonwebtoken::EncodingKey::from_ed_pem(self.auth.private_key.expose().as_bytes())
            .is_err()
        {
            return Err(invalid(
                "auth.private_key",
                "is not an Ed25519 private key in PEM (make one: `openssl genpkey -algorithm ed25519 -out bot.key`)",
            ));
        }
        if let Some(slack) = &self.slack {
            if slack.signing_secret.expose().is_empty() {
                return Err(invalid("slack.signing_secret", "is empty"));
            }
            if !slack.bot_token.expose().starts_with("xoxb-") {
                return Err(invalid("slack.bot_token", "must be a bot token (xoxb-…)"));
            }
            if slack.mode == SlackMode::Socket
                && !slack
                    .app_token
                    .as_ref()
                    .is_some_and(|t| t.expose().starts_with("xapp-"))
            {
                return Err(invalid(
                    "slack.app_token",
                    "Socket Mode needs an app-level token (xapp-…)",
                ));
            }
            if url::Url::parse(&slack.api_url).is_err() {
                return Err(invalid("slack.api_url", "not a URL"));
            }
        }
        Ok(())
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.auth.token_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack(extra: &str) -> SlackConfig {
        toml::from_str(&format!(
            "signing_secret = \"s\"\nbot_token = \"xoxb-1\"\napp_token = \"xapp-1\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn start_up_warns_only_when_http_mode_serves_every_workspace() {
        for (extra, warns) in [
            ("", true),
            ("mode = \"http\"", true),
            ("mode = \"http\"\nteam_id = \"T0LAB\"", false),
            ("mode = \"socket\"", false),
            ("mode = \"socket\"\nteam_id = \"T0LAB\"", false),
        ] {
            assert_eq!(slack(extra).serves_any_workspace(), warns, "{extra:?}");
        }
    }

    #[test]
    fn the_example_config_reads_and_names_its_workspace() {
        let example = include_str!("../../manifests/vessel-bot.example.toml");
        // Its secrets are files on the deployed machine; any text will do.
        let mut text = String::new();
        for line in example.lines() {
            let line = match line.split_once("{ file = ") {
                Some((key, _)) => format!("{key}\"a secret\""),
                None => line.to_string(),
            };
            text.push_str(&line);
            text.push('\n');
        }
        let config: BotConfig = toml::from_str(&text).expect("the example parses");
        let slack = config.slack.expect("the example has [slack]");
        assert!(slack.team_id.as_deref().is_some_and(|t| t.starts_with('T')));
        assert!(!slack.serves_any_workspace());
    }

    #[test]
    fn a_config_error_says_what_failed_and_its_cause_says_why_once() {
        let e = BotConfig::from_toml_str("orchestrator_url = ").unwrap_err();
        let toml_says = std::error::Error::source(&e)
            .expect("the TOML error")
            .to_string();
        assert!(!e.to_string().contains(&toml_says), "{e}");
        assert_eq!(crate::chain(&e), format!("{e}: {toml_says}"));

        let missing = Path::new("/nonexistent/vessel-bot.toml");
        let e = BotConfig::load(missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read the config /nonexistent/vessel-bot.toml"
        );
        assert!(
            crate::chain(&e).ends_with("No such file or directory (os error 2)"),
            "{}",
            crate::chain(&e)
        );
    }
}
