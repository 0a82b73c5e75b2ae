//! One SSH connection to a host (russh): pinned host key, public-key auth,
//! commands, and channels to the host's Docker socket. Also the bare
//! handshake that proves a vessel's sshd holds the key made for it.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::ChannelMsg;

use crate::config::HostSpec;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("{address} presented host key {presented}, not the pinned one")]
    HostKeyMismatch { address: String, presented: String },
    #[error("{address} refused the key for user `{user}`")]
    AuthRefused { address: String, user: String },
    #[error("cannot read the SSH key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("ssh: {0}")]
    Protocol(String),
}

impl From<russh::Error> for SshError {
    fn from(e: russh::Error) -> Self {
        SshError::Protocol(e.to_string())
    }
}

/// Accepts exactly the pinned key and remembers what was presented, so a
/// mismatch can be reported with the offending fingerprint.
struct PinnedKey {
    expected: PublicKey,
    presented: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for PinnedKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            return Ok(false);
        };
        let ok = key.key_data() == self.expected.key_data();
        if !ok {
            *self.presented.lock().expect("poisoned") = Some(crate::sshkeys::fingerprint(key));
        }
        Ok(ok)
    }
}

pub struct SshSession {
    handle: client::Handle<PinnedKey>,
}

impl SshSession {
    pub async fn connect(spec: &HostSpec, timeout: Duration) -> Result<SshSession, SshError> {
        tokio::time::timeout(timeout, Self::connect_inner(spec))
            .await
            .map_err(|_| SshError::Timeout(timeout))?
    }

    async fn connect_inner(spec: &HostSpec) -> Result<SshSession, SshError> {
        let address = spec.ssh.address.clone();
        let expected =
            crate::sshkeys::parse_public_key(&spec.ssh.host_key).map_err(|e| SshError::Key {
                path: "ssh.host_key".into(),
                reason: e.to_string(),
            })?;
        let key = load_key(&spec.ssh.key_path)?;
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let presented = Arc::new(std::sync::Mutex::new(None));
        let handler = PinnedKey {
            expected,
            presented: presented.clone(),
        };
        let mut handle = match client::connect(config, address.as_str(), handler).await {
            Ok(handle) => handle,
            Err(e) => {
                if let Some(fp) = presented.lock().expect("poisoned").take() {
                    return Err(SshError::HostKeyMismatch {
                        address,
                        presented: fp,
                    });
                }
                return Err(SshError::Connect {
                    address,
                    reason: e.to_string(),
                });
            }
        };
        let hash = handle.best_supported_rsa_hash().await?.flatten();
        let auth = handle
            .authenticate_publickey(
                spec.ssh.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await?;
        if !auth.success() {
            return Err(SshError::AuthRefused {
                address,
                user: spec.ssh.user.clone(),
            });
        }
        Ok(SshSession { handle })
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Runs a command; returns (exit status, stdout, stderr).
    pub async fn exec(&self, command: &str) -> Result<(u32, String, String), SshError> {
        let mut channel = self.handle.channel_open_session().await?;
        channel.exec(true, command).await?;
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        Ok((
            status.unwrap_or(255),
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        ))
    }

    /// A byte stream to a unix socket on the host (the Docker API).
    pub async fn open_socket(
        &self,
        path: &str,
    ) -> Result<russh::ChannelStream<client::Msg>, SshError> {
        let channel = self.handle.channel_open_direct_streamlocal(path).await?;
        Ok(channel.into_stream())
    }
}

/// Connects to `address`, checks that the server proves it holds the
/// private half of `expected` (the key exchange signs with it), and
/// disconnects without authenticating. `HostKeyMismatch` means someone else
/// answered there; any other error, that nothing proper answers yet.
pub async fn verify_host_key(
    address: &str,
    port: u16,
    expected: PublicKey,
    timeout: Duration,
) -> Result<(), SshError> {
    let presented = Arc::new(std::sync::Mutex::new(None));
    let handler = PinnedKey {
        expected,
        presented: presented.clone(),
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(timeout),
        nodelay: true,
        ..Default::default()
    });
    let connect = client::connect(config, (address, port), handler);
    let handle = match tokio::time::timeout(timeout, connect).await {
        Err(_) => return Err(SshError::Timeout(timeout)),
        Ok(Ok(handle)) => handle,
        Ok(Err(e)) => {
            if let Some(presented) = presented.lock().expect("poisoned").take() {
                return Err(SshError::HostKeyMismatch {
                    address: format!("{address}:{port}"),
                    presented,
                });
            }
            return Err(SshError::Connect {
                address: format!("{address}:{port}"),
                reason: e.to_string(),
            });
        }
    };
    // Best effort: the server learns we are done; nothing depends on it.
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(())
}

fn load_key(path: &std::path::Path) -> Result<PrivateKey, SshError> {
    russh::keys::load_secret_key(path, None).map_err(|e| SshError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}
