//! `vessel jupyter NAME`: Jupyter listens on the vessel's loopback only (its
//! token rides in a plain-HTTP URL, which anyone on the path could read), so
//! the CLI forwards a local port to it over SSH, with the vessel's pinned
//! host key and the destination after `--` as `vessel ssh` does; waits until
//! the forward accepts, prints the URL, opens a browser where there is one,
//! and keeps the forward until Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vessel_api::ssh::SshLogin;

use crate::ctx::Ctx;
use crate::error::CliError;
use crate::{login, ssh};

/// How long ssh has to log in and bind the local port.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

/// The Jupyter port and token of the orchestrator's
/// `http://127.0.0.1:PORT/lab?token=…`: all the CLI takes from it. The URL
/// it prints is made from these, never passed on as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JupyterLink {
    pub port: u16,
    token: String,
}

impl JupyterLink {
    pub fn parse(url: &str) -> Result<JupyterLink, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        if parsed.scheme() != "http" {
            return Err(format!("scheme {} is not http", parsed.scheme()));
        }
        let port = parsed
            .port()
            .filter(|p| *p != 0)
            .ok_or("it names no port")?;
        let token = parsed
            .query_pairs()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .ok_or("it has no token")?;
        // The orchestrator's tokens are hex; anything else is not its.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("its token is not letters and digits".into());
        }
        Ok(JupyterLink { port, token })
    }

    /// The URL that reaches Jupyter through a forward on `local`.
    pub fn url(&self, local: u16) -> String {
        format!("http://127.0.0.1:{local}/lab?token={}", self.token)
    }
}

/// ssh's arguments for the forward: `vessel ssh`'s options, then
/// `ExitOnForwardFailure` (a port ssh cannot bind ends it instead of leaving
/// a session that forwards nothing), no remote command, the local end bound
/// to this machine's loopback only (whatever `GatewayPorts` says), then
/// `--` and the destination.
pub fn forward_args(
    login: &SshLogin,
    known: &Path,
    identity: Option<&Path>,
    local: u16,
    remote: u16,
) -> Vec<String> {
    let mut args = ssh::option_args(known, identity);
    args.extend([
        "-o".to_string(),
        "ExitOnForwardFailure=yes".to_string(),
        "-N".to_string(),
        "-L".to_string(),
        format!("127.0.0.1:{local}:127.0.0.1:{remote}"),
        "-l".to_string(),
        login.user.to_string(),
        "--".to_string(),
        login.host_name().to_string(),
    ]);
    args
}

pub async fn jupyter(
    ctx: &mut Ctx,
    name: &str,
    identity: Option<PathBuf>,
    local: Option<u16>,
    no_browser: bool,
) -> Result<(), CliError> {
    let (view, login) = ssh::reachable(ctx, name).await?;
    let Some(url) = view.ssh.as_ref().and_then(|s| s.jupyter_url.as_deref()) else {
        return Err(CliError::Refused(format!(
            "{name} has no Jupyter: its image carries no org.vessel.jupyter label"
        )));
    };
    let link = JupyterLink::parse(url).map_err(|why| {
        CliError::Remote(format!(
            "refusing the orchestrator's answer about vessel {name}: ssh.jupyter_url: {why}"
        ))
    })?;
    let local = local.unwrap_or(link.port);
    // Another program on the port would answer the wait below in ssh's
    // place and be handed the token.
    std::net::TcpListener::bind(("127.0.0.1", local)).map_err(|e| {
        CliError::user(format!(
            "port {local} on this machine is taken ({e}): choose another with --port"
        ))
    })?;
    let identity = ssh::identity(identity)?;
    let known = ssh::pin(&login)?;
    let args = forward_args(&login, &known, identity.as_deref(), local, link.port);
    let mut child = tokio::process::Command::new("ssh")
        .args(&args)
        .kill_on_drop(true)
        .spawn()
        .map_err(CliError::io("cannot run ssh (install OpenSSH's client)"))?;
    eprintln!("Forwarding 127.0.0.1:{local} to {name}'s Jupyter over SSH…");
    forwarded(&mut child, local).await?;
    let url = link.url(local);
    println!("{url}");
    eprintln!("Open the URL above; Ctrl-C ends the forward.");
    if !no_browser {
        login::open_browser(&url);
    }
    tokio::select! {
        status = child.wait() => {
            let status = status.map_err(CliError::io("cannot wait for ssh"))?;
            Err(CliError::Remote(format!("the SSH forward to {name} ended ({status})")))
        }
        _ = tokio::signal::ctrl_c() => {
            let _ = child.kill().await;
            Ok(())
        }
    }
}

/// Waits until the local end of the forward accepts, or ssh ends first.
async fn forwarded(child: &mut tokio::process::Child, local: u16) -> Result<(), CliError> {
    let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(CliError::io("cannot wait for ssh"))?
        {
            return Err(CliError::Remote(format!(
                "ssh ended before the forward was up ({status}); its message is above"
            )));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(CliError::Remote(format!(
                "the SSH forward on port {local} was not up after {}s",
                FORWARD_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_port_and_a_plain_token_are_taken_from_the_url() {
        let link = JupyterLink::parse("http://127.0.0.1:8888/lab?token=ab12").unwrap();
        assert_eq!(link.port, 8888);
        assert_eq!(link.url(9000), "http://127.0.0.1:9000/lab?token=ab12");
        // An older orchestrator's URL names the vessel's address: the port
        // and token are still all there is to take.
        let old = JupyterLink::parse("http://10.0.0.9:8888/lab?token=ab12").unwrap();
        assert_eq!(old.url(8888), link.url(8888));
        for bad in [
            "https://127.0.0.1:8888/lab?token=ab12",
            "http://127.0.0.1/lab?token=ab12",
            "http://127.0.0.1:8888/lab",
            "http://127.0.0.1:8888/lab?token=",
            "http://127.0.0.1:8888/lab?token=a%26next%3Dhttp://evil",
            "javascript:alert(1)",
        ] {
            assert!(JupyterLink::parse(bad).is_err(), "{bad}");
        }
    }
}
