//! A vessel is ready when sshd on its address completes an SSH handshake
//! with the host key the orchestrator made for it — not merely when
//! something there says `SSH-`: whoever else answers at that address (a
//! device that claimed the vessel's tailnet name, a machine on the LAN that
//! took its address) cannot prove that key, and the vessel fails at once,
//! naming the key that was presented. The container is watched meanwhile:
//! one that exits fails at once, with its last log lines as the reason.

use std::time::{Duration, Instant};

use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures::StreamExt;
use tracing::Instrument;

use super::provision::ProvisionError;
use crate::hosts::ssh::{verify_host_key, SshError};

/// One handshake's patience: a local sshd answers in milliseconds.
const ATTEMPT: Duration = Duration::from_secs(2);

pub async fn wait_for_sshd(
    docker: &Docker,
    container: &str,
    address: &str,
    host_public_key: &str,
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let expected = crate::sshkeys::parse_public_key(host_public_key).map_err(|e| {
        ProvisionError::Permanent(format!("the vessel's own host key does not parse: {e}"))
    })?;
    let deadline = Instant::now() + timeout;
    let mut next_inspect = Instant::now() + Duration::from_millis(300);
    loop {
        let handshake = verify_host_key(address, 22, expected.clone(), ATTEMPT)
            .instrument(tracing::info_span!("ssh_handshake"))
            .await;
        let last = match handshake {
            Ok(()) => return Ok(()),
            Err(SshError::HostKeyMismatch { presented, .. }) => {
                return Err(ProvisionError::Permanent(format!(
                    "{address}:22 answered with host key {presented}, not the one made for this \
                     vessel ({}): something else holds its address, so it is not handed out",
                    crate::sshkeys::fingerprint(&expected)
                )))
            }
            Err(e) => e,
        };
        let now = Instant::now();
        if now >= next_inspect {
            next_inspect = now + Duration::from_millis(500);
            ensure_running(docker, container)
                .instrument(tracing::info_span!("ensure_running"))
                .await?;
        }
        if now >= deadline {
            return Err(ProvisionError::Permanent(format!(
                "sshd did not answer with the vessel's host key on {address}:22 within {}s ({}); the container's last lines: {}",
                timeout.as_secs(),
                last,
                last_lines(docker, container).await
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails at once, with the container's last lines, if it is not running.
pub async fn ensure_running(docker: &Docker, container: &str) -> Result<(), ProvisionError> {
    if let Ok(info) = docker.inspect_container(container, None).await {
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) {
            return Err(ProvisionError::Permanent(format!(
                "the container exited (status {}) before it was ready; its last lines: {}",
                state.exit_code.unwrap_or(-1),
                last_lines(docker, container).await
            )));
        }
    }
    Ok(())
}

async fn last_lines(docker: &Docker, container: &str) -> String {
    let mut logs = docker.logs(
        container,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            tail: "5".into(),
            ..Default::default()
        }),
    );
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.push_str(&chunk.to_string());
    }
    let text = text.trim().replace('\n', " | ");
    if text.is_empty() {
        "(none)".into()
    } else {
        text.chars().take(600).collect()
    }
}
