//! `vessel ssh NAME [-- CMD…]`, `vessel code NAME` and `vessel jupyter
//! NAME`: OpenSSH with a known-hosts file written from the vessel's pinned
//! host key and `StrictHostKeyChecking yes`, so the first login is as safe
//! as the hundredth. Every value from the orchestrator is parsed first, and
//! the destination goes after `--` on ssh's command line.
//!
//! Jupyter listens on the vessel's loopback only (its token rides in a
//! plain-HTTP URL, which anyone on the path could read): `vessel jupyter`
//! forwards a local port to it over SSH, waits until the forward accepts,
//! prints the URL, opens a browser where there is one, and keeps the
//! forward until Ctrl-C.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vessel_api::ssh::SshLogin;
use vessel_api::vessels::{ListQuery, VesselView};
use vessel_api::VesselState;

use crate::ctx::Ctx;
use crate::error::CliError;
use crate::vessel::Vessel;
use crate::{paths, render, sshconf};

/// The private key to log in with: the one given, else the one `keys add`
/// registered last, else `~/.ssh/id_ed25519` if it exists, else none (ssh's
/// own defaults and agent).
pub fn identity(given: Option<PathBuf>) -> Result<Option<PathBuf>, CliError> {
    if let Some(path) = given {
        if !path.is_file() {
            return Err(CliError::user(format!(
                "no private key at {}",
                path.display()
            )));
        }
        return Ok(Some(std::fs::canonicalize(&path).unwrap_or(path)));
    }
    let remembered = paths::config_dir()?.join("identity");
    if let Ok(text) = std::fs::read_to_string(&remembered) {
        let path = PathBuf::from(text.trim());
        if path.is_file() {
            return Ok(Some(path));
        }
    }
    let default = paths::ssh_dir()?.join("id_ed25519");
    Ok(default.is_file().then_some(default))
}

/// Writes the vessel's known-hosts line to a file of its own and returns
/// it. One file per vessel, rewritten each time: a vessel's address may
/// have been another's, so no old line may vouch for it. The file is named
/// by the vessel's name, which cannot hold a `/` or be `..`.
pub fn pin(login: &SshLogin) -> Result<PathBuf, CliError> {
    let dir = paths::config_dir()?.join("known_hosts.d");
    paths::private_dir(&dir)?;
    let known = dir.join(login.alias.as_str());
    paths::write_private(&known, format!("{}\n", login.known_hosts).as_bytes(), 0o600)?;
    Ok(known)
}

/// The running vessel and its SSH access, or why there is none.
pub(crate) async fn reachable(
    ctx: &mut Ctx,
    name: &str,
) -> Result<(VesselView, SshLogin), CliError> {
    let Vessel { view: v, login } = ctx.vessel(name).await?;
    if let Some(login) = login {
        return Ok((v, login));
    }
    Err(CliError::Refused(match (v.state, &v.line) {
        (VesselState::Pending, Some(p)) => {
            format!(
                "{name} is waiting in line ({}); no SSH yet",
                render::place(p)
            )
        }
        (VesselState::Running, _) => format!(
            "{name} runs, but its SSH access is shown only to its owner ({})",
            v.owner
        ),
        (state, _) => format!("{name} is {state}; SSH works once it runs"),
    }))
}

/// Our `-o` options: the pinned known-hosts file, strict checking, and
/// the identity if there is one.
pub fn option_args(known: &Path, identity: Option<&Path>) -> Vec<String> {
    let mut args = Vec::new();
    for (k, v) in sshconf::host_options(known, identity) {
        args.push("-o".to_string());
        args.push(format!("{k}={v}"));
    }
    args
}

/// ssh's arguments: our options only, then `--`, then the destination
/// and the user's command, so nothing after the options is read as one.
pub fn ssh_args(
    login: &SshLogin,
    known: &Path,
    identity: Option<&Path>,
    command: &[String],
) -> Vec<String> {
    let mut args = option_args(known, identity);
    args.push("-l".to_string());
    args.push(login.user.to_string());
    args.push("--".to_string());
    // Ask for the name the known-hosts line vouches for.
    args.push(login.host_name().to_string());
    args.extend(command.iter().cloned());
    args
}

pub async fn ssh(
    ctx: &mut Ctx,
    name: &str,
    identity: Option<PathBuf>,
    command: &[String],
) -> Result<(), CliError> {
    let (_, login) = reachable(ctx, name).await?;
    let identity = self::identity(identity)?;
    let known = pin(&login)?;
    let args = ssh_args(&login, &known, identity.as_deref(), command);
    // ssh takes over this process: its terminal, its exit code.
    let err = std::process::Command::new("ssh").args(args).exec();
    Err(CliError::io("cannot run ssh (install OpenSSH's client)")(
        err,
    ))
}

pub async fn code(ctx: &mut Ctx, name: &str, identity: Option<PathBuf>) -> Result<(), CliError> {
    let (_, login) = reachable(ctx, name).await?;
    // VS Code's Remote-SSH finds hosts in ~/.ssh/config: keep it current.
    let vessels = ctx.vessels(&ListQuery::default()).await?;
    let layout = sshconf::Layout::new(None)?;
    let identity = self::identity(identity)?;
    sshconf::apply(&layout, &vessels.logins(), identity.as_deref())?;
    let folder = format!("/home/{}", login.user);
    let remote = format!("ssh-remote+{}", login.alias);
    let has_code = std::process::Command::new("code")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_code {
        let err = std::process::Command::new("code")
            .arg("--remote")
            .arg(&remote)
            .arg(&folder)
            .exec();
        return Err(CliError::io("cannot run code")(err));
    }
    // Made here from the parsed fields, as the orchestrator makes it.
    println!(
        "VS Code is not on PATH here. Open this in a browser or your desktop:\nvscode://vscode-remote/{remote}{folder}"
    );
    Ok(())
}

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
    let mut args = option_args(known, identity);
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
    let (view, login) = reachable(ctx, name).await?;
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
    let identity = self::identity(identity)?;
    let known = pin(&login)?;
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
        crate::login::open_browser(&url);
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
    fn the_destination_comes_after_a_double_dash() {
        let login = SshLogin::parse(&vessel_api::vessels::SshAccess {
            host_alias: "train".into(),
            address: "100.64.0.9".into(),
            user: "alice".into(),
            config: String::new(),
            known_hosts: "train.ts.net,100.64.0.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnzCY/0Yze03fsgzUCAhYiHbNIit35RU+RbelDWmMfn".into(),
            vscode_url: String::new(),
            jupyter_url: None,
        })
        .unwrap();
        let args = ssh_args(
            &login,
            Path::new("/k/train"),
            Some(Path::new("/k/id")),
            &["-v".to_string()],
        );
        assert_eq!(
            args,
            [
                "-o",
                "UserKnownHostsFile=/k/train",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentityFile=/k/id",
                "-o",
                "IdentitiesOnly=yes",
                "-l",
                "alice",
                "--",
                "train.ts.net",
                "-v",
            ]
        );
    }

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
