//! How to reach a vessel over SSH, parsed: a host as an IP address or a DNS
//! host name, a `known_hosts` line (`NAMES KEY-TYPE BASE64`, a known key
//! type and a key blob of that type), and a view's whole `SshAccess` field
//! by field as an `SshLogin`. A client writes these into ssh's config, into
//! file names and onto ssh's command line, so a value that exists here can
//! be none of: an option (`-o…`), a pattern (`*`), a path (`../`), or a
//! second line.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;

use crate::names::{NameError, UnixName, VesselName};
use crate::vessels::SshAccess;

/// Why a value is not a host, a known_hosts line or a name. Values are
/// quoted shortened and escaped: they may come from a hostile server.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SshValueError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("`{0}` is not an IP address or a DNS host name")]
    Host(String),
    #[error("`{line}` is not a known_hosts line `NAMES KEY-TYPE BASE64`: {why}")]
    KnownHosts { line: String, why: String },
}

/// One field of an `SshAccess` that is not what it must be; the field is
/// named as it is on the wire (`ssh.host_alias`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("its `ssh.{field}` is not usable")]
pub struct SshFieldError {
    pub field: &'static str,
    #[source]
    pub source: SshValueError,
}

/// At most 60 characters of `s`, control characters escaped.
fn quoted(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(60) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// An IP address or a DNS host name (labels of a-z, A-Z, 0-9 and `-`, not
/// at either end): what `HostName` and ssh's destination may be.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostAddress(String);

impl HostAddress {
    pub fn parse(s: &str) -> Result<Self, SshValueError> {
        if s.parse::<IpAddr>().is_ok() || is_dns_name(s) {
            Ok(HostAddress(s.to_string()))
        } else {
            Err(SshValueError::Host(quoted(s)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_dns_name(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl fmt::Display for HostAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host key types OpenSSH writes into known_hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKeyType {
    Ed25519,
    Rsa,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    SkEd25519,
    SkEcdsaP256,
}

impl HostKeyType {
    pub const ALL: [HostKeyType; 7] = [
        HostKeyType::Ed25519,
        HostKeyType::Rsa,
        HostKeyType::EcdsaP256,
        HostKeyType::EcdsaP384,
        HostKeyType::EcdsaP521,
        HostKeyType::SkEd25519,
        HostKeyType::SkEcdsaP256,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyType::Ed25519 => "ssh-ed25519",
            HostKeyType::Rsa => "ssh-rsa",
            HostKeyType::EcdsaP256 => "ecdsa-sha2-nistp256",
            HostKeyType::EcdsaP384 => "ecdsa-sha2-nistp384",
            HostKeyType::EcdsaP521 => "ecdsa-sha2-nistp521",
            HostKeyType::SkEd25519 => "sk-ssh-ed25519@openssh.com",
            HostKeyType::SkEcdsaP256 => "sk-ecdsa-sha2-nistp256@openssh.com",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        HostKeyType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for HostKeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `known_hosts` line pinning one key for named hosts: no marker
/// (`@cert-authority`, `@revoked`), no pattern, no hashed names, no
/// comment, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHostsLine {
    names: Vec<HostAddress>,
    key_type: HostKeyType,
    key: String,
}

/// Longer than any RSA key OpenSSH makes (16384 bits is about 2,800).
const MAX_KEY_BASE64: usize = 8192;

impl KnownHostsLine {
    pub fn parse(line: &str) -> Result<Self, SshValueError> {
        let bad = |why: &str| SshValueError::KnownHosts {
            line: quoted(line),
            why: why.to_string(),
        };
        let fields: Vec<&str> = line.split(' ').collect();
        let [names, key_type, key] = fields[..] else {
            return Err(bad("three fields separated by single spaces, on one line"));
        };
        let names = names
            .split(',')
            .map(HostAddress::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("each name must be an IP address or a DNS host name"))?;
        let key_type = HostKeyType::parse(key_type).ok_or_else(|| {
            bad(&format!(
                "the key type `{}` is not one OpenSSH writes",
                quoted(key_type)
            ))
        })?;
        if key.len() > MAX_KEY_BASE64 {
            return Err(bad("the key is too long"));
        }
        let blob = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| bad("the key is not base64"))?;
        if blob_type(&blob) != Some(key_type.as_str().as_bytes()) {
            return Err(bad(&format!("the key is not an {key_type} key")));
        }
        Ok(KnownHostsLine {
            names,
            key_type,
            key: key.to_string(),
        })
    }

    /// The hosts the key is pinned for; never empty.
    pub fn names(&self) -> &[HostAddress] {
        &self.names
    }

    pub fn key_type(&self) -> HostKeyType {
        self.key_type
    }

    /// The key blob, base64 as in the line.
    pub fn key_base64(&self) -> &str {
        &self.key
    }
}

/// The key type an SSH public key blob names first (RFC 4253 §6.6: a
/// length-prefixed string).
fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4usize.checked_add(len)?)
}

impl fmt::Display for KnownHostsLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names.iter().map(HostAddress::as_str).collect();
        write!(f, "{} {} {}", names.join(","), self.key_type, self.key)
    }
}

/// A view's `SshAccess`, every field a client acts on parsed: the alias a
/// vessel name, the address a host, the user a unix name, and a
/// known_hosts line that vouches for the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshLogin {
    pub alias: VesselName,
    pub address: HostAddress,
    pub user: UnixName,
    pub known_hosts: KnownHostsLine,
}

impl SshLogin {
    /// The whole access, or the first field that is not usable.
    pub fn parse(access: &SshAccess) -> Result<Self, SshFieldError> {
        let field = |field: &'static str| move |source| SshFieldError { field, source };
        // The names' own errors quote the value as it is; ours, escaped.
        let alias = VesselName::parse(&access.host_alias)
            .map_err(|_| NameError::Vessel(quoted(&access.host_alias)).into())
            .map_err(field("host_alias"))?;
        let address = HostAddress::parse(&access.address).map_err(field("address"))?;
        let user = UnixName::parse(&access.user)
            .map_err(|_| NameError::Unix(quoted(&access.user)).into())
            .map_err(field("user"))?;
        let known_hosts =
            KnownHostsLine::parse(&access.known_hosts).map_err(field("known_hosts"))?;
        if !known_hosts.names().contains(&address) {
            return Err(field("known_hosts")(SshValueError::KnownHosts {
                line: quoted(&access.known_hosts),
                why: format!("it does not pin the key for the address {address}"),
            }));
        }
        Ok(SshLogin {
            alias,
            address,
            user,
            known_hosts,
        })
    }

    /// The name ssh should ask for: the first the known_hosts line pins
    /// (the MagicDNS name, when there is one), so the pinned key matches.
    pub fn host_name(&self) -> &HostAddress {
        &self.known_hosts.names()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOnzCY/0Yze03fsgzUCAhYiHbNIit35RU+RbelDWmMfn";

    fn access(alias: &str, address: &str, user: &str, known_hosts: &str) -> SshAccess {
        SshAccess {
            host_alias: alias.into(),
            address: address.into(),
            user: user.into(),
            config: String::new(),
            known_hosts: known_hosts.into(),
            vscode_url: String::new(),
            jupyter_url: None,
        }
    }

    #[test]
    fn hosts_are_addresses_or_dns_names_and_never_options() {
        for ok in [
            "10.0.0.9",
            "fd7a:115c:a1e0::9",
            "train.tail1234.ts.net",
            "gpu-1",
        ] {
            assert_eq!(HostAddress::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "-oProxyCommand=x",
            "a b",
            "*",
            "a..b",
            "a.",
            "../x",
            "host\nHost *",
            "[::1]:22",
            "-a.b",
            &"a".repeat(64),
        ] {
            assert!(HostAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_known_hosts_line_pins_one_key_of_a_known_type() {
        let line = format!("train.ts.net,100.64.0.9 ssh-ed25519 {KEY}");
        let parsed = KnownHostsLine::parse(&line).unwrap();
        assert_eq!(parsed.to_string(), line);
        assert_eq!(parsed.names()[1].as_str(), "100.64.0.9");
        assert_eq!(parsed.key_type(), HostKeyType::Ed25519);
        for bad in [
            format!("10.0.0.9 ssh-ed25519 {KEY}\n10.0.0.8 ssh-ed25519 {KEY}"),
            format!("@cert-authority * ssh-ed25519 {KEY}"),
            format!("* ssh-ed25519 {KEY}"),
            format!("|1|abc=|def= ssh-ed25519 {KEY}"),
            format!("10.0.0.9 ssh-ed25519 {KEY} comment"),
            format!("10.0.0.9  ssh-ed25519 {KEY}"),
            format!("10.0.0.9 ssh-dss {KEY}"),
            format!("10.0.0.9 ssh-rsa {KEY}"),
            "10.0.0.9 ssh-ed25519 not-base64!".to_string(),
            "10.0.0.9 ssh-ed25519 AAAA".to_string(),
            format!("-oProxyCommand=x ssh-ed25519 {KEY}"),
        ] {
            assert!(KnownHostsLine::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_ssh_access_is_refused_naming_its_first_bad_field() {
        let line = format!("10.0.0.9 ssh-ed25519 {KEY}");
        let ok = SshLogin::parse(&access("train", "10.0.0.9", "alice", &line)).unwrap();
        assert_eq!(ok.host_name().as_str(), "10.0.0.9");
        for (a, field) in [
            (
                access("../../.bashrc", "10.0.0.9", "alice", &line),
                "host_alias",
            ),
            (
                access("train", "-oProxyCommand=x", "alice", &line),
                "address",
            ),
            (
                access("train", "10.0.0.9", "-oProxyCommand=x", &line),
                "user",
            ),
            (access("train", "10.0.0.9", "root", &line), "user"),
            (access("train", "10.0.0.8", "alice", &line), "known_hosts"),
        ] {
            let e = SshLogin::parse(&a).unwrap_err();
            assert_eq!(e.field, field, "{a:?}");
            assert_eq!(e.to_string(), format!("its `ssh.{field}` is not usable"));
        }
        let e = SshLogin::parse(&access("train\nHost *", "10.0.0.9", "alice", &line)).unwrap_err();
        assert!(
            std::error::Error::source(&e).is_some_and(|s| !s.to_string().contains('\n')),
            "a hostile value is quoted escaped"
        );
    }
}
