//! The values a request is made of, parsed once at the edge: a value of one of
//! these types that exists is valid.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("`{0}` is not a valid name: 1–32 of a-z, 0-9 and `-`, starting with a letter")]
    Name(String),
    #[error("`{0}` is not a queue name: 1–32 of a-z, A-Z, 0-9, `-` and `_`")]
    Queue(String),
    #[error("{0}")]
    SshKey(String),
    #[error(
        "`{0}` is not a unix user name: 1–32 of a-z, 0-9, `-` and `_`, starting with a letter"
    )]
    UnixName(String),
}

/// A vessel's name, also its hostname and the `Host` in the SSH config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct VesselName(String);

impl VesselName {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(VesselName(s.to_string()))
        } else {
            Err(DomainError::Name(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VesselName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct QueueName(String);

impl QueueName {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = (1..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(QueueName(s.to_string()))
        } else {
            Err(DomainError::Queue(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A unix user name as `useradd` accepts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UnixName(String);

impl UnixName {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && !RESERVED_USERS.contains(&s);
        if ok {
            Ok(UnixName(s.to_string()))
        } else {
            Err(DomainError::UnixName(s.to_string()))
        }
    }

    /// Derives a unix name from a token subject (`U024BE7LH`, `alice@lab.org`,
    /// `console:alice`).
    pub fn derive(subject: &str) -> Self {
        let unscoped = subject.rsplit(':').next().unwrap_or(subject);
        let local = unscoped.split('@').next().unwrap_or(unscoped);
        let mut name: String = local
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
            .take(28)
            .collect();
        if !name.starts_with(|c: char| c.is_ascii_lowercase())
            || RESERVED_USERS.contains(&name.as_str())
        {
            name = format!("u{name}");
        }
        name.truncate(32);
        UnixName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names that exist in every image and must never be handed to a person.
const RESERVED_USERS: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "nobody",
    "sshd",
    "systemd-network",
    "messagebus",
    "_apt",
];

/// An SSH public key a user logs in with, normalised to `type base64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshPublicKey {
    pub openssh: String,
    pub fingerprint: String,
}

impl SshPublicKey {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let key = crate::sshkeys::parse_public_key(s.trim())
            .map_err(|e| DomainError::SshKey(format!("not an SSH public key: {e}")))?;
        let openssh = key
            .to_openssh()
            .map_err(|e| DomainError::SshKey(e.to_string()))?;
        // Drop the comment: it is the user's, not ours to keep.
        let openssh = openssh
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let fingerprint = key.fingerprint(russh::keys::HashAlg::Sha256).to_string();
        Ok(SshPublicKey {
            openssh,
            fingerprint,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VesselState {
    Requested,
    Pending,
    Provisioning,
    Running,
    Stopping,
    Buried,
    Failed,
    Lost,
}

impl VesselState {
    pub fn as_str(self) -> &'static str {
        match self {
            VesselState::Requested => "requested",
            VesselState::Pending => "pending",
            VesselState::Provisioning => "provisioning",
            VesselState::Running => "running",
            VesselState::Stopping => "stopping",
            VesselState::Buried => "buried",
            VesselState::Failed => "failed",
            VesselState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => VesselState::Requested,
            "pending" => VesselState::Pending,
            "provisioning" => VesselState::Provisioning,
            "running" => VesselState::Running,
            "stopping" => VesselState::Stopping,
            "buried" => VesselState::Buried,
            "failed" => VesselState::Failed,
            "lost" => VesselState::Lost,
            _ => return None,
        })
    }

    pub fn is_live(self) -> bool {
        matches!(
            self,
            VesselState::Requested
                | VesselState::Pending
                | VesselState::Provisioning
                | VesselState::Running
                | VesselState::Stopping
        )
    }
}

impl fmt::Display for VesselState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vessel_names_are_hostnames() {
        assert!(VesselName::parse("train-7").is_ok());
        for bad in ["", "7train", "Train", "a_b", "a-", &"a".repeat(33)] {
            assert!(VesselName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_names_derive_from_subjects() {
        assert_eq!(UnixName::derive("alice@lab.org").as_str(), "alice");
        assert_eq!(UnixName::derive("U024BE7LH").as_str(), "u024be7lh");
        assert_eq!(UnixName::derive("root").as_str(), "uroot");
        assert_eq!(UnixName::derive("console:dana").as_str(), "dana");
        assert!(UnixName::parse(UnixName::derive("9-x@y").as_str()).is_ok());
    }
}
