//! The values a request is made of, parsed once at the edge: the contract
//! crate's names and states, and what only the orchestrator parses (SSH
//! public keys, which need russh).

use serde::Serialize;

pub use vessel_api::names::{ImageRef, NameError, QueueName, UnixName, VesselName, VesselState};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("not an SSH public key: {0}")]
    SshKey(String),
    #[error(
        "one key at a time: the text holds {0} lines with keys; add each with its own request"
    )]
    SeveralKeys(usize),
}

/// An SSH public key a user logs in with, normalised to `type base64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshPublicKey {
    pub openssh: String,
    pub fingerprint: String,
}

impl SshPublicKey {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        // A pasted second line used to be cut off silently; refuse instead
        // (issue 10): the user thinks both keys were added.
        let lines = s.lines().filter(|l| !l.trim().is_empty()).count();
        if lines > 1 {
            return Err(DomainError::SeveralKeys(lines));
        }
        let key = crate::sshkeys::parse_public_key(s.trim())
            .map_err(|e| DomainError::SshKey(e.to_string()))?;
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
