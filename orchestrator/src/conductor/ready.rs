//! A vessel is ready when sshd on its address completes an SSH handshake
//! with the host key the orchestrator made for it — not merely when
//! something there says `SSH-`: whoever else answers at that address (a
//! device that claimed the vessel's tailnet name, a machine on the LAN that
//! took its address) cannot prove that key, and the vessel fails at once,
//! naming the key that was presented. The container is watched meanwhile:
//! one that exits fails at once, with its last log lines as the reason.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures::{Stream, StreamExt};
use tracing::Instrument;

use super::error::ProvisionError;
use crate::hosts::ssh::{verify_host_key, SshError};

/// One handshake's patience: a local sshd answers in milliseconds.
const ATTEMPT: Duration = Duration::from_secs(2);
/// The first pause between handshakes; it doubles up to `MAX_PAUSE`. Short:
/// a refused connection costs next to nothing, and the user is waiting.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// The least time between two handshakes started by output: a container
/// that writes without pause must not turn into a flood of connections.
const MIN_GAP: Duration = Duration::from_millis(2);
/// How often the container is inspected when its output cannot tell us
/// that it exited.
const INSPECT_EVERY: Duration = Duration::from_millis(500);

/// The container's output (stdout and stderr, as it is written) from its
/// start. sshd says `Server listening` the moment it can answer; the
/// stream ends when the container exits.
pub type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// Waits until sshd at `address` proves `host_public_key`. A handshake is
/// tried at once whenever the container writes something (so sshd's
/// `Server listening` is answered without a polling delay), else after a
/// short pause that grows; the container exiting fails the vessel at once,
/// with its last lines.
pub async fn wait_for_sshd(
    docker: &Docker,
    container: &str,
    address: &str,
    host_public_key: &str,
    timeout: Duration,
    mut output: Option<&mut Output>,
) -> Result<(), ProvisionError> {
    let expected = crate::sshkeys::parse_public_key(host_public_key).map_err(|e| {
        ProvisionError::Permanent(format!("the vessel's own host key does not parse: {e}"))
    })?;
    let deadline = Instant::now() + timeout;
    let mut next_inspect = Instant::now() + Duration::from_millis(300);
    let mut pause = FIRST_PAUSE;
    loop {
        let attempted = Instant::now();
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
        // Without the output stream, only an inspection notices an exit.
        if output.is_none() && now >= next_inspect {
            next_inspect = now + INSPECT_EVERY;
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
        let wait = pause.min(deadline - now);
        let said = match output.as_deref_mut() {
            Some(stream) => tokio::time::timeout(wait, stream.next())
                .instrument(tracing::info_span!("wait_for_output"))
                .await
                .ok(),
            None => {
                tokio::time::sleep(wait).await;
                None
            }
        };
        match said {
            // Something was written: try again now, or as soon as the
            // gap allows.
            Some(Some(Ok(chunk))) => {
                let text = chunk.into_bytes();
                let text = String::from_utf8_lossy(&text);
                tracing::debug!(output = %text.trim_end(), "the container wrote");
                tokio::time::sleep_until((attempted + MIN_GAP).into()).await
            }
            // The stream ended: the container exited, or the connection
            // to the host dropped; an inspection tells which.
            Some(Some(Err(_)) | None) => {
                output = None;
                ensure_running(docker, container)
                    .instrument(tracing::info_span!("ensure_running"))
                    .await?;
                next_inspect = Instant::now() + INSPECT_EVERY;
            }
            // The pause passed in silence.
            None => pause = (pause * 2).min(MAX_PAUSE),
        }
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
