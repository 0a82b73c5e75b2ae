//! `vessel ssh NAME [-- CMD…]` and `vessel code NAME`: OpenSSH with a
//! known-hosts file written from the vessel's pinned host key and
//! `StrictHostKeyChecking yes`, so the first login is as safe as the
//! hundredth. Every value from the orchestrator is parsed first, and the
//! destination goes after `--` on ssh's command line.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

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
}
