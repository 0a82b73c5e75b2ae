//! The init every vessel starts with, uploaded into the container before it
//! starts: creates the user with their uid, installs their keys and the host
//! key the orchestrator generated, starts Jupyter when the image has it, and
//! runs sshd in the foreground.

use std::io::Write;

/// Where the init and its inputs live inside the container (root only).
pub const DIR: &str = "/.vessel";
pub const ENTRYPOINT: &str = "/.vessel/init";

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

/// The tar uploaded to `/` of the container. Every value in `env` is of a
/// validated charset (names, numbers, UUIDs, hex), so single quotes suffice;
/// a value that is not (a bug upstream) is refused here rather than sourced
/// by the container's root.
pub fn archive(inputs: &InitInputs<'_>) -> std::io::Result<Vec<u8>> {
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
    let mut keys = inputs.authorized_keys.join("\n");
    keys.push('\n');
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o700);
    dir.set_size(0);
    dir.set_uid(0);
    dir.set_gid(0);
    builder.append_data(&mut dir, ".vessel/", std::io::empty())?;
    let files: [(&str, &[u8], u32); 5] = [
        ("init", INIT.as_bytes(), 0o700),
        ("env", env.as_bytes(), 0o600),
        ("authorized_keys", keys.as_bytes(), 0o600),
        (
            "ssh_host_ed25519_key",
            inputs.host_private_key.as_bytes(),
            0o600,
        ),
        (
            "ssh_host_ed25519_key.pub",
            inputs.host_public_key.as_bytes(),
            0o644,
        ),
    ];
    let files = files.into_iter().chain(
        ts_key
            .as_deref()
            .map(|k| ("ts-authkey", k.as_bytes(), 0o600)),
    );
    for (name, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        builder.append_data(&mut header, format!(".vessel/{name}"), data)?;
    }
    let mut out = builder.into_inner()?;
    out.flush()?;
    Ok(out)
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
        assert!(names.contains(&".vessel/init".to_string()));
        assert!(names.contains(&".vessel/ssh_host_ed25519_key".to_string()));
        let text = String::from_utf8_lossy(&tar);
        assert!(text.contains("VESSEL_GPUS='GPU-a,GPU-b'"));
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
