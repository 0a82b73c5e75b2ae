//! A vessel is ready when sshd on its address answers with a banner. The
//! container is watched meanwhile: one that exits fails at once, with its
//! last log lines as the reason.

use std::time::{Duration, Instant};

use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::provision::ProvisionError;

pub async fn wait_for_sshd(
    docker: &Docker,
    container: &str,
    address: &str,
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let deadline = Instant::now() + timeout;
    let mut next_inspect = Instant::now() + Duration::from_millis(300);
    loop {
        if banner(address).await {
            return Ok(());
        }
        let now = Instant::now();
        if now >= next_inspect {
            next_inspect = now + Duration::from_millis(500);
            ensure_running(docker, container).await?;
        }
        if now >= deadline {
            return Err(ProvisionError::Permanent(format!(
                "sshd did not answer on {address}:22 within {}s; the container's last lines: {}",
                timeout.as_secs(),
                last_lines(docker, container).await
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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

/// True when `address:22` answers with an SSH identification string.
async fn banner(address: &str) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect((address, 22)).await.ok()?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"SSH-"))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
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
