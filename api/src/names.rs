//! The names a request is made of — vessels, queues, unix users, images —
//! and a vessel's lifecycle state. Each is parsed once at the edge; a value
//! that exists is valid, on either side of the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("`{0}` is not a valid name: 1–32 of a-z, 0-9 and `-`, starting with a letter")]
    Vessel(String),
    #[error("`{0}` is not a queue name: 1–32 of a-z, A-Z, 0-9, `-` and `_`")]
    Queue(String),
    #[error(
        "`{0}` is not a unix user name: 1–32 of a-z, 0-9, `-` and `_`, starting with a letter, and not a system account"
    )]
    Unix(String),
    #[error("`{0}` is not an image name")]
    Image(String),
}

/// Generates the serde glue of a string newtype: serialised as the string,
/// deserialised only through `parse`, so a bad value fails at the boundary
/// with the parser's own message.
macro_rules! string_newtype {
    ($t:ident) => {
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $t::parse(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                $t::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A vessel's name, also its hostname and the `Host` in the SSH config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VesselName(String);
string_newtype!(VesselName);

impl VesselName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(VesselName(s.to_string()))
        } else {
            Err(NameError::Vessel(s.to_string()))
        }
    }
}

/// A class of hardware (`3090`, `a100`, `cpu`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);
string_newtype!(QueueName);

impl QueueName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = (1..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(QueueName(s.to_string()))
        } else {
            Err(NameError::Queue(s.to_string()))
        }
    }
}

/// A unix user name as `useradd` accepts it, and never one an image
/// already uses for itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnixName(String);
string_newtype!(UnixName);

impl UnixName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && !RESERVED_USERS.contains(&s);
        if ok {
            Ok(UnixName(s.to_string()))
        } else {
            Err(NameError::Unix(s.to_string()))
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
}

/// Names that exist in common images (Debian's system accounts, and the
/// default users of cloud, Jupyter, Node and CUDA images) and must never be
/// handed to a person: their files in the image would be theirs.
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
    "gnats",
    "nobody",
    "sshd",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "messagebus",
    "_apt",
    "ubuntu",
    "debian",
    "admin",
    "ec2-user",
    "centos",
    "fedora",
    "jovyan",
    "node",
    "postgres",
    "mysql",
    "redis",
    "nvidia",
    "docker",
    "tailscale",
    "vessel",
];

/// A Docker image reference (`vessel/base:1`, `lab/cuda@sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef(String);
string_newtype!(ImageRef);

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = (1..=255).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
            && !s.starts_with(['-', '.', '/', ':']);
        if ok {
            Ok(ImageRef(s.to_string()))
        } else {
            Err(NameError::Image(s.to_string()))
        }
    }
}

/// Where a vessel is in its life:
/// requested → pending → provisioning → running → stopping → buried,
/// or failed / lost; running → hibernating → hibernated (its GPUs, cores
/// and memory given back, its container stopped and kept), and a wake
/// back through pending → provisioning → running on the same host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Waited in line longer than its queue's `max_wait`; never ran.
    Expired,
    /// Its container is being stopped, to keep its disk and give back the rest.
    Hibernating,
    /// Stopped, its disk kept on its host; holds no GPU, core or memory.
    Hibernated,
}

impl VesselState {
    pub const ALL: [VesselState; 11] = [
        VesselState::Requested,
        VesselState::Pending,
        VesselState::Provisioning,
        VesselState::Running,
        VesselState::Stopping,
        VesselState::Buried,
        VesselState::Failed,
        VesselState::Lost,
        VesselState::Expired,
        VesselState::Hibernating,
        VesselState::Hibernated,
    ];

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
            VesselState::Expired => "expired",
            VesselState::Hibernating => "hibernating",
            VesselState::Hibernated => "hibernated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        VesselState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Holds (or is about to hold) resources.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            VesselState::Requested
                | VesselState::Pending
                | VesselState::Provisioning
                | VesselState::Running
                | VesselState::Stopping
                | VesselState::Hibernating
        )
    }

    /// Keeps its name among its owner's vessels: live, or asleep.
    pub fn keeps_name(self) -> bool {
        self.is_live() || self == VesselState::Hibernated
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
    fn names_cross_the_wire_only_when_valid() {
        let ok: VesselName = serde_json::from_str("\"train\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"train\"");
        let bad = serde_json::from_str::<VesselName>("\"Bad Name\"").unwrap_err();
        assert!(bad.to_string().contains("not a valid name"), "{bad}");
        assert!(serde_json::from_str::<UnixName>("\"jovyan\"").is_err());
    }

    #[test]
    fn unix_names_derive_from_subjects() {
        assert_eq!(UnixName::derive("alice@lab.org").as_str(), "alice");
        assert_eq!(UnixName::derive("U024BE7LH").as_str(), "u024be7lh");
        assert_eq!(UnixName::derive("root").as_str(), "uroot");
        assert_eq!(UnixName::derive("ubuntu").as_str(), "uubuntu");
        assert_eq!(UnixName::derive("console:dana").as_str(), "dana");
        assert!(UnixName::parse(UnixName::derive("9-x@y").as_str()).is_ok());
    }

    #[test]
    fn states_round_trip() {
        for s in VesselState::ALL {
            assert_eq!(VesselState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
