//! The fleet's hosts: the inventory from config, one kept-open SSH connection
//! per host, and the Docker client that rides on it.

pub mod docker;
pub mod probe;
pub mod ssh;
pub mod storage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use tracing::Instrument;

use crate::config::HostSpec;
use ssh::{SshError, SshSession};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("host `{0}` is not in the inventory")]
    Unknown(String),
    #[error("host {host}")]
    Ssh { host: String, source: SshError },
    #[error("host {host}: the Docker API does not answer over SSH")]
    Docker {
        host: String,
        source: bollard::errors::Error,
    },
}

/// What the conductor needs to act on a host.
pub struct HostLink {
    pub ssh: Arc<SshSession>,
    pub docker: Docker,
}

/// One host's connection, made under its own lock.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<HostLink>>>>;

/// Connections are made on first use and replaced when they drop; one
/// connect at a time per host so a burst of jobs does not open a burst of
/// SSH sessions.
pub struct HostPool {
    specs: HashMap<String, HostSpec>,
    links: Mutex<HashMap<String, Slot>>,
    timeout: Duration,
}

impl HostPool {
    pub fn new(specs: &[HostSpec], timeout: Duration) -> Self {
        HostPool {
            specs: specs.iter().map(|s| (s.name.clone(), s.clone())).collect(),
            links: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn spec(&self, host: &str) -> Option<&HostSpec> {
        self.specs.get(host)
    }

    pub fn specs(&self) -> impl Iterator<Item = &HostSpec> {
        self.specs.values()
    }

    pub async fn link(&self, host: &str) -> Result<Arc<HostLink>, HostError> {
        let spec = self
            .specs
            .get(host)
            .ok_or_else(|| HostError::Unknown(host.to_string()))?;
        let slot = self
            .links
            .lock()
            .expect("poisoned")
            .entry(host.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(link) = slot.as_ref() {
            if !link.ssh.is_closed() {
                return Ok(link.clone());
            }
        }
        *slot = None;
        let ssh = Arc::new(
            SshSession::connect(spec, self.timeout)
                .instrument(tracing::info_span!("ssh_connect"))
                .await
                .map_err(|source| HostError::Ssh {
                    host: host.to_string(),
                    source,
                })?,
        );
        let docker = tokio::time::timeout(
            self.timeout,
            docker::docker_over_ssh(ssh.clone(), spec.docker_socket.clone()),
        )
        .instrument(tracing::info_span!("docker_negotiate"))
        .await
        .map_err(|_| HostError::Ssh {
            host: host.to_string(),
            source: SshError::Timeout(self.timeout),
        })?
        .map_err(|source| HostError::Docker {
            host: host.to_string(),
            source,
        })?;
        let link = Arc::new(HostLink { ssh, docker });
        *slot = Some(link.clone());
        Ok(link)
    }

    /// Drops a connection after an error that may have left it broken.
    pub fn forget(&self, host: &str) {
        self.links.lock().expect("poisoned").remove(host);
    }
}
