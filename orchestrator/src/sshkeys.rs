//! SSH key material the orchestrator makes and reads: per-vessel host keys
//! (so the DM can carry a `known_hosts` line and nobody trusts on first use)
//! and the parsing of users' and hosts' public keys.

use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey, PublicKey};

pub fn parse_public_key(openssh: &str) -> Result<PublicKey, russh::keys::ssh_key::Error> {
    PublicKey::from_openssh(openssh.trim())
}

/// A freshly generated ed25519 host key for one vessel.
pub struct HostKey {
    /// OpenSSH PEM; goes into the container only, never into the database.
    pub private_openssh: String,
    /// `ssh-ed25519 AAAA…`
    pub public_openssh: String,
}

impl HostKey {
    pub fn generate(comment: &str) -> Result<HostKey, russh::keys::ssh_key::Error> {
        let seed: [u8; 32] = rand::random();
        let keypair = Ed25519Keypair::from_seed(&seed);
        let key = PrivateKey::new(KeypairData::from(keypair), comment)?;
        let private_openssh = key.to_openssh(LineEnding::LF)?.to_string();
        let public_openssh = key
            .public_key()
            .to_openssh()?
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(HostKey {
            private_openssh,
            public_openssh,
        })
    }
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_host_keys_round_trip() {
        let key = HostKey::generate("vessel").unwrap();
        assert!(key.public_openssh.starts_with("ssh-ed25519 "));
        let parsed = PrivateKey::from_openssh(&key.private_openssh).unwrap();
        let public = parse_public_key(&key.public_openssh).unwrap();
        assert_eq!(parsed.public_key().key_data(), public.key_data());
    }
}
