//! `vessel ssh NAME [-- CMD…]` and `vessel code NAME`: OpenSSH with a
//! known-hosts file written from the vessel's pinned host key and
//! `StrictHostKeyChecking yes`, so the first login is as safe as the
//! hundredth.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use vessel_api::VesselState;

use crate::ctx::Ctx;
use crate::error::{from_client, CliError};
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
/// have been another's, so no old line may vouch for it.
pub fn pin(entry: &sshconf::Entry) -> Result<PathBuf, CliError> {
    let dir = paths::config_dir()?.join("known_hosts.d");
    paths::private_dir(&dir)?;
    let known = dir.join(&entry.alias);
    paths::write_private(&known, format!("{}\n", entry.known_hosts).as_bytes(), 0o600)?;
    Ok(known)
}

/// The running vessel's entry, or why there is none.
async fn reachable(ctx: &mut Ctx, name: &str) -> Result<sshconf::Entry, CliError> {
    let v = ctx.vessel(name).await?;
    if let Some(e) = sshconf::Entry::of(&v) {
        return Ok(e);
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

pub async fn ssh(
    ctx: &mut Ctx,
    name: &str,
    identity: Option<PathBuf>,
    command: &[String],
) -> Result<(), CliError> {
    let entry = reachable(ctx, name).await?;
    let identity = self::identity(identity)?;
    let known = pin(&entry)?;
    let mut cmd = std::process::Command::new("ssh");
    for (k, v) in sshconf::host_options(&known, identity.as_deref()) {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    // Ask for the name the known-hosts line vouches for.
    let host = entry
        .known_hosts
        .split_whitespace()
        .next()
        .and_then(|n| n.split(',').next())
        .unwrap_or(&entry.address)
        .to_string();
    cmd.arg("-l").arg(&entry.user).arg(host);
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    // ssh takes over this process: its terminal, its exit code.
    let err = cmd.exec();
    Err(CliError::user(format!(
        "cannot run ssh: {err} (install OpenSSH's client)"
    )))
}

pub async fn code(ctx: &mut Ctx, name: &str, identity: Option<PathBuf>) -> Result<(), CliError> {
    let entry = reachable(ctx, name).await?;
    let v = ctx.vessel(name).await?;
    // VS Code's Remote-SSH finds hosts in ~/.ssh/config: keep it current.
    let token = ctx.token().await?;
    let list = ctx
        .client
        .list(&token, &Default::default())
        .await
        .map_err(|e| from_client("cannot list vessels", e))?;
    let entries: Vec<sshconf::Entry> = list.vessels.iter().filter_map(sshconf::Entry::of).collect();
    let layout = sshconf::Layout::new(None)?;
    let identity = self::identity(identity)?;
    sshconf::apply(&layout, &entries, identity.as_deref())?;
    let folder = format!("/home/{}", entry.user);
    let has_code = std::process::Command::new("code")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_code {
        let err = std::process::Command::new("code")
            .arg("--remote")
            .arg(format!("ssh-remote+{}", entry.alias))
            .arg(&folder)
            .exec();
        return Err(CliError::user(format!("cannot run code: {err}")));
    }
    let url = v
        .ssh
        .map(|s| s.vscode_url)
        .unwrap_or_else(|| format!("vscode://vscode-remote/ssh-remote+{}{folder}", entry.alias));
    println!("VS Code is not on PATH here. Open this in a browser or your desktop:\n{url}");
    Ok(())
}
