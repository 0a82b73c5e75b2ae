//! The init every vessel starts with, sent to the container's stdin as it
//! starts (a tar, length first): creates the user with their uid, installs
//! their keys and the host key the orchestrator generated, starts Jupyter
//! when the image has it, and runs sshd in the foreground. Sent rather than
//! uploaded: a Docker upload unpacks in a process of its own on the host
//! and cannot overlap the start, and it cost more than the rest of the init
//! put together. The secrets still never touch the container's config or
//! environment.

use std::io::Write;

/// Where the init and its inputs live inside the container (root only).
pub const DIR: &str = "/.vessel";

/// The container's entrypoint (`sh -c`): unpacks the init from stdin —
/// exactly the announced length, so it never waits for more — and runs
/// it. The init comes last in the tar, so an archive cut short by a lost
/// connection leaves no init to run and the container exits. A container
/// started again (by hand) runs the init it already has.
pub const BOOTSTRAP: &str = r#"set -eu
if [ ! -e /.vessel/init ]; then
  IFS= read -r size
  head -c "$size" | tar -x -f - -C /
fi
exec /bin/sh /.vessel/init
"#;

const INIT: &str = include_str!("init.sh");

pub struct InitInputs<'a> {
    pub vessel_name: &'a str,
    pub user: &'a str,
    pub uid: i32,
    /// Comma-separated GPU UUIDs, or `none`.
    pub gpus: &'a str,
    pub authorized_keys: &'a [String],
    pub host_private_key: &'a str,
    pub host_public_key: &'a str,
    pub jupyter_token: &'a str,
    /// Join the tailnet: (hostname, single-use auth key).
    pub tailscale: Option<(&'a str, &'a str)>,
}

/// What the container reads on stdin: the archive's length on a line,
/// then the archive (see `BOOTSTRAP`).
pub fn payload(inputs: &InitInputs<'_>) -> std::io::Result<Vec<u8>> {
    let tar = archive(inputs)?;
    let mut out = format!("{}\n", tar.len()).into_bytes();
    out.extend_from_slice(&tar);
    Ok(out)
}

/// The sshd configuration: the vessel's own host key and the owner's keys,
/// that user only, keys only.
fn sshd_config(user: &str, gpus: &str, vessel_name: &str) -> String {
    format!(
        "Port 22
HostKey /etc/vessel/ssh_host_ed25519_key
AuthorizedKeysFile /etc/vessel/authorized_keys
AllowUsers {user}
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
X11Forwarding no
AllowTcpForwarding yes
AllowStreamLocalForwarding no
Subsystem sftp internal-sftp
SetEnv NVIDIA_VISIBLE_DEVICES={gpus} VESSEL_NAME={vessel_name}
"
    )
}

/// The tar unpacked at `/` of the container: sshd's files where sshd reads
/// them, already with their owners and modes (no copying by the init), and
/// the init with its inputs in `DIR`, the init last. Every value in `env`
/// and the sshd configuration is of a validated charset (names, numbers,
/// UUIDs, hex), so single quotes suffice; a value that is not (a bug
/// upstream) is refused here rather than sourced by the container's root.
pub fn archive(inputs: &InitInputs<'_>) -> std::io::Result<Vec<u8>> {
    let (env, ts_key) = env_file(inputs)?;
    let sshd = sshd_config(inputs.user, inputs.gpus, inputs.vessel_name);
    let mut keys = inputs.authorized_keys.join("\n");
    keys.push('\n');
    let mut builder = tar::Builder::new(Vec::new());
    let dirs: [(&str, u32); 3] = [
        ("etc/vessel/", 0o755),
        // sshd's privilege-separation directory.
        ("run/sshd/", 0o755),
        (".vessel/", 0o700),
    ];
    for (path, mode) in dirs {
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(mode);
        dir.set_size(0);
        dir.set_uid(0);
        dir.set_gid(0);
        dir.set_mtime(0);
        builder.append_data(&mut dir, path, std::io::empty())?;
    }
    let files: [(&str, &[u8], u32); 5] = [
        ("etc/vessel/sshd_config", sshd.as_bytes(), 0o644),
        // Read by sshd as the user: world-readable, as ~/.ssh would be.
        ("etc/vessel/authorized_keys", keys.as_bytes(), 0o644),
        (
            "etc/vessel/ssh_host_ed25519_key",
            inputs.host_private_key.as_bytes(),
            0o600,
        ),
        (
            "etc/vessel/ssh_host_ed25519_key.pub",
            inputs.host_public_key.as_bytes(),
            0o644,
        ),
        (".vessel/env", env.as_bytes(), 0o600),
    ];
    let files = files
        .into_iter()
        .chain(
            ts_key
                .as_deref()
                .map(|k| (".vessel/ts-authkey", k.as_bytes(), 0o600)),
        )
        // Last: its presence means the archive arrived whole.
        .chain([(".vessel/init", INIT.as_bytes(), 0o700)]);
    for (path, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        builder.append_data(&mut header, path, data)?;
    }
    let mut out = builder.into_inner()?;
    out.flush()?;
    Ok(out)
}

/// The init's env file, checked value by value, and the tailnet auth key's
/// file when the vessel joins one.
fn env_file(inputs: &InitInputs<'_>) -> std::io::Result<(String, Option<String>)> {
    let mut vars = vec![
        ("VESSEL_NAME", inputs.vessel_name.to_string()),
        ("VESSEL_USER", inputs.user.to_string()),
        ("VESSEL_UID", inputs.uid.to_string()),
        ("VESSEL_GPUS", inputs.gpus.to_string()),
        ("JUPYTER_TOKEN", inputs.jupyter_token.to_string()),
    ];
    // The auth key is a file of its own (root only), read by `tailscale up`
    // and deleted: never an argument, never in the environment.
    let ts_key = match inputs.tailscale {
        Some((hostname, key)) => {
            vars.push(("VESSEL_TAILSCALE", "1".into()));
            vars.push(("VESSEL_TS_HOSTNAME", hostname.to_string()));
            Some(format!("{key}\n"))
        }
        None => None,
    };
    let mut env = String::new();
    for (name, value) in &vars {
        if !is_env_safe(value) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name} holds a character the init's env file cannot carry: {value:?}"),
            ));
        }
        env.push_str(&format!("{name}='{value}'\n"));
    }
    Ok((env, ts_key))
}

/// Letters, digits and `-_.,:@`: what names, numbers, UUIDs and tokens are
/// made of, and nothing a shell reads specially inside single quotes.
fn is_env_safe(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.,:@".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_the_init_and_its_inputs() {
        let keys = vec!["ssh-ed25519 AAAA alice".to_string()];
        let tar = archive(&InitInputs {
            vessel_name: "train",
            user: "alice",
            uid: 20001,
            gpus: "GPU-a,GPU-b",
            authorized_keys: &keys,
            host_private_key: "PRIVATE",
            host_public_key: "ssh-ed25519 BBBB",
            jupyter_token: "abc",
            tailscale: None,
        })
        .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names.last().map(String::as_str), Some(".vessel/init"));
        assert!(names.contains(&"etc/vessel/ssh_host_ed25519_key".to_string()));
        assert!(names.contains(&"etc/vessel/authorized_keys".to_string()));
        let text = String::from_utf8_lossy(&tar);
        assert!(text.contains("VESSEL_GPUS='GPU-a,GPU-b'"));
        assert!(text.contains("AllowUsers alice\n"));
        assert!(text.contains("SetEnv NVIDIA_VISIBLE_DEVICES=GPU-a,GPU-b VESSEL_NAME=train\n"));
    }

    #[test]
    fn the_payload_announces_the_archives_exact_length() {
        let keys = vec!["ssh-ed25519 AAAA alice".to_string()];
        let payload = payload(&InitInputs {
            vessel_name: "train",
            user: "alice",
            uid: 20001,
            gpus: "none",
            authorized_keys: &keys,
            host_private_key: "PRIVATE",
            host_public_key: "ssh-ed25519 BBBB",
            jupyter_token: "abc",
            tailscale: None,
        })
        .unwrap();
        let newline = payload.iter().position(|b| *b == b'\n').unwrap();
        let size: usize = std::str::from_utf8(&payload[..newline])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(size, payload.len() - newline - 1);
    }

    #[test]
    fn a_value_that_would_break_out_of_its_quotes_is_refused() {
        let keys = vec!["ssh-ed25519 AAAA alice".to_string()];
        let inputs = |gpus| InitInputs {
            vessel_name: "train",
            user: "alice",
            uid: 20001,
            gpus,
            authorized_keys: &keys,
            host_private_key: "PRIVATE",
            host_public_key: "ssh-ed25519 BBBB",
            jupyter_token: "abc",
            tailscale: None,
        };
        assert!(archive(&inputs("GPU-a'; touch /pwned; echo '")).is_err());
        assert!(archive(&inputs("GPU-a\nVESSEL_USER=root")).is_err());
        assert!(archive(&inputs("none")).is_ok());
    }
}
