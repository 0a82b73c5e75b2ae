//! Where the CLI keeps things: the user's config directory (XDG, for the
//! sign-in) and `~/.ssh` (for `config-ssh`). Read from the environment
//! (`XDG_CONFIG_HOME`, `HOME`) so tests and users can move them.

use std::path::PathBuf;

use crate::error::CliError;

pub fn home() -> Result<PathBuf, CliError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| CliError::user("$HOME is not set"))
}

/// `$XDG_CONFIG_HOME/vessel`, else `~/.config/vessel`.
pub fn config_dir() -> Result<PathBuf, CliError> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => home()?.join(".config"),
    };
    Ok(base.join("vessel"))
}

pub fn ssh_dir() -> Result<PathBuf, CliError> {
    Ok(home()?.join(".ssh"))
}

/// Creates a directory only its owner can enter (it holds tokens, or SSH
/// configuration).
pub fn private_dir(dir: &std::path::Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(CliError::io(format!("cannot create {}", dir.display())))
}

/// Writes a file atomically (a temporary file renamed over it) with `mode`
/// from the first byte: a token is never readable by others, not even for
/// a moment.
pub fn write_private(path: &std::path::Path, contents: &[u8], mode: u32) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .ok_or_else(|| CliError::user(format!("{} has no directory", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let what = format!("cannot write {}", path.display());
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(CliError::io(what.clone()))?;
    // The umask may have narrowed the mode; never widened it.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|_| file.write_all(contents))
        .and_then(|_| file.sync_all())
        .map_err(CliError::io(what.clone()))?;
    std::fs::rename(&tmp, path).map_err(CliError::io(what))
}
