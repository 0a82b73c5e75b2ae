//! SSH without trust on first use. `vessel config-ssh` keeps one file of
//! `Host` blocks (one per running vessel) and its known-hosts file, written
//! from the vessels' pinned host keys, and makes sure `~/.ssh/config`
//! includes it — one line, added at the top, never another line touched,
//! the old file backed up. `vessel ssh` uses the same known-hosts lines.
//! Rendering and the Include edit are pure functions; `apply` writes.
//! Every value from the orchestrator arrives parsed (`SshLogin`): a name,
//! a host or a known_hosts line that cannot hold a newline or an option.
//!
//! Paths in what we write are absolute: OpenSSH expands `~` and relative
//! `Include`s from the password database, not `$HOME`.

use std::path::{Path, PathBuf};

use vessel_api::ssh::SshLogin;

use crate::error::CliError;
use crate::paths;

/// The first line of the file we own.
pub const HEADER: &str = "# Written by `vessel config-ssh`: one block per running vessel.\n\
# Run it again to update; edits here are overwritten.\n";

/// A path as an ssh_config argument: quoted when it has spaces.
fn arg(path: &Path) -> String {
    let s = path.display().to_string();
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s
    }
}

/// The options every block and `vessel ssh` share: the pinned key only.
pub fn host_options(known_hosts: &Path, identity: Option<&Path>) -> Vec<(String, String)> {
    let mut opts = vec![
        ("UserKnownHostsFile".to_string(), arg(known_hosts)),
        ("StrictHostKeyChecking".to_string(), "yes".to_string()),
    ];
    if let Some(id) = identity {
        opts.push(("IdentityFile".to_string(), arg(id)));
        opts.push(("IdentitiesOnly".to_string(), "yes".to_string()));
    }
    opts
}

/// One `Host` block.
pub fn block(e: &SshLogin, known_hosts: &Path, identity: Option<&Path>) -> String {
    let mut out = format!(
        "Host {}\n    HostName {}\n    User {}\n",
        e.alias,
        e.host_name(),
        e.user
    );
    for (k, v) in host_options(known_hosts, identity) {
        out.push_str(&format!("    {k} {v}\n"));
    }
    out
}

/// The whole file: the header and one block per entry, by name.
pub fn render(entries: &[&SshLogin], known_hosts: &Path, identity: Option<&Path>) -> String {
    let mut sorted: Vec<&SshLogin> = entries.to_vec();
    sorted.sort_by(|a, b| a.alias.cmp(&b.alias));
    let mut out = HEADER.to_string();
    for e in sorted {
        out.push('\n');
        out.push_str(&block(e, known_hosts, identity));
    }
    out
}

pub fn render_known_hosts(entries: &[&SshLogin]) -> String {
    let mut lines: Vec<String> = entries.iter().map(|e| e.known_hosts.to_string()).collect();
    lines.sort();
    lines.dedup();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Whether a config line already includes `target` (absolute, `~/…`, or
/// relative to `~/.ssh`, as OpenSSH resolves them).
fn includes(line: &str, target: &Path, ssh_dir: &Path, home: &Path) -> bool {
    let mut words = line.split_whitespace();
    let Some(keyword) = words.next() else {
        return false;
    };
    // `Include=path` is legal ssh_config too.
    let (keyword, first) = match keyword.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (keyword, None),
    };
    if !keyword.eq_ignore_ascii_case("include") {
        return false;
    }
    first
        .into_iter()
        .chain(words)
        .map(|w| w.trim_matches('"'))
        .any(|w| {
            let resolved = if let Some(rest) = w.strip_prefix("~/") {
                home.join(rest)
            } else if Path::new(w).is_absolute() {
                PathBuf::from(w)
            } else {
                ssh_dir.join(w)
            };
            resolved == target
        })
}

/// `config` with the Include line for `target` added at the top, or None
/// when it is already there. At the top because an Include after a `Host`
/// line would only apply inside that host's block.
pub fn with_include(config: &str, target: &Path, ssh_dir: &Path, home: &Path) -> Option<String> {
    if config
        .lines()
        .any(|l| includes(l.trim(), target, ssh_dir, home))
    {
        return None;
    }
    Some(format!("Include {}\n{config}", arg(target)))
}

/// What `apply` did, for the message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub file_changed: bool,
    pub include_added: bool,
    pub backup: Option<PathBuf>,
}

pub struct Layout {
    pub file: PathBuf,
    pub known_hosts: PathBuf,
    pub user_config: PathBuf,
    pub ssh_dir: PathBuf,
    pub home: PathBuf,
}

impl Layout {
    /// `~/.ssh/config.d/vessel` unless the user chose a path.
    pub fn new(file: Option<PathBuf>) -> Result<Layout, CliError> {
        let home = paths::home()?;
        let ssh_dir = paths::ssh_dir()?;
        let file = match file {
            Some(f) if f.is_absolute() => f,
            Some(f) => std::env::current_dir()
                .map_err(CliError::io("cannot read the current directory"))?
                .join(f),
            None => ssh_dir.join("config.d").join("vessel"),
        };
        let mut known = file.clone().into_os_string();
        known.push(".known_hosts");
        Ok(Layout {
            known_hosts: PathBuf::from(known),
            user_config: ssh_dir.join("config"),
            file,
            ssh_dir,
            home,
        })
    }
}

/// Writes what changed, and nothing else: a second run with the same
/// vessels touches no file.
pub fn apply(
    layout: &Layout,
    entries: &[&SshLogin],
    identity: Option<&Path>,
) -> Result<Outcome, CliError> {
    let mut outcome = Outcome::default();
    paths::private_dir(&layout.ssh_dir)?;
    if let Some(dir) = layout.file.parent() {
        paths::private_dir(dir)?;
    }
    let config = render(entries, &layout.known_hosts, identity);
    let known = render_known_hosts(entries);
    if read_or_empty(&layout.known_hosts)? != known {
        paths::write_private(&layout.known_hosts, known.as_bytes(), 0o600)?;
        outcome.file_changed = true;
    }
    if read_or_empty(&layout.file)? != config {
        paths::write_private(&layout.file, config.as_bytes(), 0o600)?;
        outcome.file_changed = true;
    }
    let existed = layout.user_config.exists();
    let current = read_or_empty(&layout.user_config)?;
    if let Some(updated) = with_include(&current, &layout.file, &layout.ssh_dir, &layout.home) {
        if existed {
            let mut backup = layout.user_config.clone().into_os_string();
            backup.push(".vessel-backup");
            let backup = PathBuf::from(backup);
            std::fs::copy(&layout.user_config, &backup).map_err(CliError::io(format!(
                "cannot back up {}",
                layout.user_config.display()
            )))?;
            outcome.backup = Some(backup);
        }
        // Keep the user's own permissions on their file.
        let mode = file_mode(&layout.user_config).unwrap_or(0o600);
        paths::write_private(&layout.user_config, updated.as_bytes(), mode)?;
        outcome.include_added = true;
    }
    Ok(outcome)
}

fn read_or_empty(path: &Path) -> Result<String, CliError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(CliError::io(format!("cannot read {}", path.display()))(e)),
    }
}

fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOnzCY/0Yze03fsgzUCAhYiHbNIit35RU+RbelDWmMfn";

    fn entry(alias: &str, address: &str, known_as: &str) -> SshLogin {
        SshLogin::parse(&vessel_api::vessels::SshAccess {
            host_alias: alias.into(),
            address: address.into(),
            user: "alice".into(),
            config: String::new(),
            known_hosts: format!("{known_as} ssh-ed25519 {KEY}"),
            vscode_url: String::new(),
            jupyter_url: None,
        })
        .unwrap()
    }

    #[test]
    fn blocks_pin_the_host_key_and_name_the_identity() {
        let known = Path::new("/home/a/.ssh/config.d/vessel.known_hosts");
        let train = entry("train", "10.0.0.9", "10.0.0.9");
        let eval = entry("eval", "10.0.0.8", "10.0.0.8");
        let text = render(
            &[&train, &eval],
            known,
            Some(Path::new("/home/a/my keys/id")),
        );
        assert!(text.starts_with(HEADER));
        let eval = text.find("Host eval").unwrap();
        let train = text.find("Host train").unwrap();
        assert!(eval < train, "sorted by name:\n{text}");
        assert!(text.contains("    HostName 10.0.0.9\n    User alice\n"));
        assert!(text.contains("UserKnownHostsFile /home/a/.ssh/config.d/vessel.known_hosts\n"));
        assert!(text.contains("StrictHostKeyChecking yes\n"));
        assert!(text.contains("IdentityFile \"/home/a/my keys/id\"\n"));
        let dns = entry("train", "100.64.0.9", "train.tail.ts.net,100.64.0.9");
        assert!(block(&dns, known, None).contains("HostName train.tail.ts.net\n"));
        assert_eq!(
            render_known_hosts(&[&dns, &dns]),
            format!("train.tail.ts.net,100.64.0.9 ssh-ed25519 {KEY}\n")
        );
    }

    #[test]
    fn the_include_goes_on_top_once_and_nothing_else_changes() {
        let home = Path::new("/home/a");
        let ssh = home.join(".ssh");
        let target = ssh.join("config.d/vessel");
        let config = "# my hosts\nHost lab\n    HostName lab.example.org\n\n# end\n";
        let once = with_include(config, &target, &ssh, home).unwrap();
        assert_eq!(
            once,
            format!("Include /home/a/.ssh/config.d/vessel\n{config}")
        );
        assert_eq!(with_include(&once, &target, &ssh, home), None);
        for present in [
            "Include ~/.ssh/config.d/vessel\n",
            "include config.d/vessel\n",
            "  Include=\"/home/a/.ssh/config.d/vessel\"\n",
            "Include other config.d/vessel\n",
        ] {
            assert_eq!(
                with_include(&format!("{present}{config}"), &target, &ssh, home),
                None,
                "{present}"
            );
        }
        assert!(with_include("Include config.d/other\n", &target, &ssh, home).is_some());
        assert_eq!(
            with_include("", &target, &ssh, home).unwrap(),
            "Include /home/a/.ssh/config.d/vessel\n"
        );
    }
}
