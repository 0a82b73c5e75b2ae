//! The Docker API of a host, spoken through its SSH connection: every HTTP
//! connection bollard makes is a new `direct-streamlocal` channel to the
//! host's Docker socket, so hosts expose nothing but sshd.

use std::sync::Arc;

use bollard::{BollardRequest, Docker};
use hyper::header::{HeaderValue, HOST};
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use super::ssh::SshSession;

/// Seconds bollard allows one API call; long enough for a large image inspect
/// or a slow container removal, short enough that a wedged daemon surfaces.
const REQUEST_TIMEOUT_SECS: u64 = 120;

pub async fn docker_over_ssh(
    session: Arc<SshSession>,
    socket: String,
) -> Result<Docker, bollard::errors::Error> {
    let docker = Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let session = session.clone();
            let socket = socket.clone();
            async move {
                let stream = session
                    .open_socket(&socket)
                    .instrument(tracing::debug_span!("docker_channel"))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                // Upgrades keep exec/attach working; the task ends with the channel.
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                });
                // Docker rejects requests without a Host header, and the URI
                // bollard built names a scheme hyper must not see here.
                let (mut parts, body) = req.into_parts();
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".into());
                parts.uri = path
                    .parse()
                    .map_err(|e: hyper::http::uri::InvalidUri| std::io::Error::other(e))?;
                parts
                    .headers
                    .insert(HOST, HeaderValue::from_static("docker"));
                let span =
                    tracing::debug_span!("docker_request", method = %parts.method, path = %path);
                Ok(sender
                    .send_request(BollardRequest::from_parts(parts, body))
                    .instrument(span)
                    .await?)
            }
        },
        Some("http://docker"),
        REQUEST_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )?;
    // The default API version is newer than many daemons: ask this one.
    docker.negotiate_version().await
}
