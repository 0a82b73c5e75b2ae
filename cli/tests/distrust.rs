//! The CLI does not trust what a server says about SSH (issue 20): a fake
//! orchestrator on 127.0.0.1 answers the routes the CLI calls with a
//! hostile vessel, and the `vessel` binary runs as a researcher would, with
//! a home of its own and a stand-in `ssh` first on PATH that records its
//! arguments. Each attack must leave every file outside the CLI's own
//! directories as it was, write no `ProxyCommand` anywhere, and never start
//! ssh with anything the server chose as an option.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// A real ed25519 public key, so only the field under attack is wrong.
const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOnzCY/0Yze03fsgzUCAhYiHbNIit35RU+RbelDWmMfn";

/// The CLI's own directories under HOME: what it may write.
const CLI_DIRS: &[&str] = &[".config/vessel/", ".ssh/config.d/"];

/// A running vessel as an honest orchestrator shows it to its owner.
fn honest() -> Value {
    json!({
        "id": "00000000-0000-4000-8000-000000000001", "name": "train",
        "owner": "alice", "owner_id": "alice", "queue": "3090", "image": "vessel/base:1",
        "gpus": 1, "cpus": 1, "memory_bytes": 1073741824, "state": "running",
        "reason": null, "host": "gpu-1", "gpu_uuids": ["GPU-1"], "cores": [0],
        "address": "10.0.0.9", "created_at": "2026-11-29T10:00:00Z",
        "started_at": "2026-11-29T10:00:01Z", "ended_at": null,
        "expires_at": "2026-11-30T10:00:00Z",
        "ssh": {
            "host_alias": "train", "address": "10.0.0.9", "user": "alice",
            "config": "Host train\n    HostName 10.0.0.9\n    User alice\n",
            "known_hosts": format!("10.0.0.9 ssh-ed25519 {KEY}"),
            "vscode_url": "vscode://vscode-remote/ssh-remote+train/home/alice",
            "jupyter_url": "http://127.0.0.1:8888/lab?token=0123abcd",
        },
    })
}

/// The honest vessel with some SSH fields replaced.
fn hostile(fields: Value) -> Value {
    let mut v = honest();
    for (k, val) in fields.as_object().expect("an object") {
        v["ssh"][k] = val.clone();
    }
    v
}

/// An orchestrator on 127.0.0.1 that shows `vessel` for every vessel
/// route the CLI calls (`me`, list, show, create).
async fn fake_orchestrator(vessel: Value) -> String {
    async fn me() -> Json<Value> {
        Json(json!({ "id": "alice", "unix_name": "alice", "uid": 1000, "keys": [] }))
    }
    async fn one(State(v): State<Arc<Value>>) -> Json<Value> {
        Json((*v).clone())
    }
    async fn list(State(v): State<Arc<Value>>) -> Json<Value> {
        Json(json!({ "vessels": [(*v).clone()] }))
    }
    let app = Router::new()
        .route("/v1/me", get(me))
        .route("/v1/vessels", get(list).post(one))
        .route("/v1/vessels/{vessel}", get(one))
        .with_state(Arc::new(vessel));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A researcher's machine: HOME with their own files, a stand-in `ssh`
/// that records its arguments (NUL-separated) instead of connecting.
struct Desk {
    _dir: tempfile::TempDir,
    home: PathBuf,
    bin: PathBuf,
    argv: PathBuf,
}

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let bin = dir.path().join("bin");
        let argv = dir.path().join("ssh-argv");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(home.join(".bashrc"), "# mine\nexport EDITOR=vi\n").unwrap();
        std::fs::write(
            home.join(".ssh/config"),
            "Host lab\n    HostName lab.example.org\n",
        )
        .unwrap();
        std::fs::write(
            home.join(".ssh/known_hosts"),
            format!("lab.example.org ssh-ed25519 {KEY}\n"),
        )
        .unwrap();
        let ssh = bin.join("ssh");
        std::fs::write(
            &ssh,
            format!("#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'\n", argv.display()),
        )
        .unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
        Desk {
            _dir: dir,
            home,
            bin,
            argv,
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vessel"))
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("PATH", path)
            .env_remove("VESSEL_SERVER")
            .env_remove("VESSEL_IDENTITY")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(15), out)
            .await
            .unwrap_or_else(|_| panic!("vessel {args:?} did not finish"))
            .unwrap()
    }

    /// Signs in to `server` with a token file, as the quick start does.
    async fn login(&self, server: &str) {
        let token = self.home.join("token");
        std::fs::write(&token, "a.b.c\n").unwrap();
        let out = self
            .run(&[
                "login",
                "--server",
                server,
                "--token-file",
                &token.display().to_string(),
            ])
            .await;
        assert!(out.status.success(), "login: {}", said(&out));
        std::fs::remove_file(token).unwrap();
    }

    /// Every file under HOME and its bytes (a symlink as its target).
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&path).unwrap();
                    out.insert(rel, target.display().to_string().into_bytes());
                } else if meta.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.home, &self.home, &mut out);
        out
    }

    /// What ssh was started with, if it was.
    fn ssh_argv(&self) -> Option<Vec<String>> {
        let bytes = std::fs::read(&self.argv).ok()?;
        Some(
            bytes
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        )
    }
}

fn said(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn outside_cli_dirs(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .filter(|(path, _)| !CLI_DIRS.iter().any(|d| path.starts_with(d)))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect()
}

/// Runs each command against a server showing `vessel`, and checks that
/// every one is refused naming `field`, with the world unchanged.
async fn refused_everywhere(vessel: Value, field: &str, commands: &[&[&str]]) {
    let server = fake_orchestrator(vessel).await;
    let desk = Desk::new();
    desk.login(&server).await;
    let before = desk.snapshot();
    for args in commands {
        let out = desk.run(args).await;
        let after = desk.snapshot();
        assert_eq!(
            outside_cli_dirs(&before),
            outside_cli_dirs(&after),
            "vessel {args:?} changed a file outside the CLI's directories\n{}",
            said(&out)
        );
        for (path, bytes) in &after {
            assert!(
                !String::from_utf8_lossy(bytes).contains("ProxyCommand"),
                "vessel {args:?} wrote a ProxyCommand into ~/{path}"
            );
        }
        assert_eq!(
            desk.ssh_argv(),
            None,
            "vessel {args:?} started ssh with what the server said"
        );
        assert_eq!(
            out.status.code(),
            Some(4),
            "vessel {args:?}: {}",
            said(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(field) && stderr.contains("refusing"),
            "vessel {args:?} does not name `{field}`: {stderr}"
        );
    }
}

const EVERY_SSH_COMMAND: &[&[&str]] = &[
    &["config-ssh"],
    &["ssh", "train"],
    &["ssh", "train", "--", "id"],
    &["code", "train"],
    &["jupyter", "train", "--no-browser"],
    &["create", "queue=3090", "--wait"],
    &["show", "train"],
];

#[tokio::test]
async fn a_newline_in_the_host_alias_cannot_add_a_proxy_command_to_the_ssh_config() {
    let injected = "train\nHost *\n    ProxyCommand sh -c 'touch /tmp/vessel-pwned'";
    refused_everywhere(
        hostile(json!({ "host_alias": injected })),
        "ssh.host_alias",
        EVERY_SSH_COMMAND,
    )
    .await;
}

#[tokio::test]
async fn a_host_alias_that_climbs_out_cannot_overwrite_a_file_outside_the_cli_directory() {
    refused_everywhere(
        hostile(json!({ "host_alias": "../../../.bashrc" })),
        "ssh.host_alias",
        EVERY_SSH_COMMAND,
    )
    .await;
}

#[tokio::test]
async fn a_destination_that_looks_like_an_option_never_reaches_ssh() {
    let option = "-oProxyCommand=sh -c 'touch /tmp/vessel-pwned'";
    refused_everywhere(
        hostile(json!({
            "address": option,
            "known_hosts": format!("{option} ssh-ed25519 {KEY}"),
        })),
        "ssh.address",
        EVERY_SSH_COMMAND,
    )
    .await;
    refused_everywhere(
        hostile(json!({ "known_hosts": format!("-oProxyCommand=x,10.0.0.9 ssh-ed25519 {KEY}") })),
        "ssh.known_hosts",
        EVERY_SSH_COMMAND,
    )
    .await;
}

#[tokio::test]
async fn a_user_name_that_is_an_option_or_a_new_line_is_refused() {
    for user in [
        "-oProxyCommand=touch /tmp/vessel-pwned",
        "alice\n    ProxyCommand touch /tmp/vessel-pwned",
        "root",
    ] {
        refused_everywhere(
            hostile(json!({ "user": user })),
            "ssh.user",
            EVERY_SSH_COMMAND,
        )
        .await;
    }
}

#[tokio::test]
async fn a_known_hosts_line_with_more_than_one_pinned_key_is_refused() {
    for line in [
        format!("10.0.0.9 ssh-ed25519 {KEY}\nHost *\n    ProxyCommand touch /tmp/vessel-pwned"),
        format!("@cert-authority * ssh-ed25519 {KEY}"),
        format!("* ssh-ed25519 {KEY}"),
        "10.0.0.9 ssh-ed25519 not-base64!".to_string(),
        format!("10.0.0.9 ssh-dss {KEY}"),
        // The key claims to be another type than the line says.
        format!("10.0.0.9 ssh-rsa {KEY}"),
        // It vouches for another machine than the address.
        format!("10.0.0.8 ssh-ed25519 {KEY}"),
    ] {
        refused_everywhere(
            hostile(json!({ "known_hosts": line })),
            "ssh.known_hosts",
            EVERY_SSH_COMMAND,
        )
        .await;
    }
}

#[tokio::test]
async fn ssh_is_given_the_destination_after_a_double_dash_and_only_our_options() {
    let server = fake_orchestrator(honest()).await;
    let desk = Desk::new();
    desk.login(&server).await;
    let before = desk.snapshot();
    let out = desk.run(&["ssh", "train", "--", "id", "-un"]).await;
    assert!(out.status.success(), "{}", said(&out));
    let known = desk.home.join(".config/vessel/known_hosts.d/train");
    assert_eq!(
        desk.ssh_argv().expect("ssh ran"),
        [
            "-o".to_string(),
            format!("UserKnownHostsFile={}", known.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-l".into(),
            "alice".into(),
            "--".into(),
            "10.0.0.9".into(),
            "id".into(),
            "-un".into(),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("10.0.0.9 ssh-ed25519 {KEY}\n")
    );
    // config-ssh changes the user's own config by one Include line only.
    let out = desk.run(&["config-ssh"]).await;
    assert!(out.status.success(), "{}", said(&out));
    let mut expected = outside_cli_dirs(&before);
    let config = desk.home.join(".ssh/config.d/vessel");
    expected.insert(
        ".ssh/config".into(),
        format!(
            "Include {}\nHost lab\n    HostName lab.example.org\n",
            config.display()
        )
        .into_bytes(),
    );
    expected.insert(
        ".ssh/config.vessel-backup".into(),
        before[".ssh/config"].clone(),
    );
    assert_eq!(outside_cli_dirs(&desk.snapshot()), expected);
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("Host train\n    HostName 10.0.0.9\n    User alice\n"),
        "{written}"
    );
}

#[tokio::test]
async fn plain_http_to_another_machine_is_refused_before_anything_is_sent() {
    let desk = Desk::new();
    let token = desk.home.join("token");
    std::fs::write(&token, "a.b.c\n").unwrap();
    // TEST-NET-1: nothing answers there, so only a refusal ends quickly.
    let out = desk
        .run(&[
            "login",
            "--server",
            "http://192.0.2.1:8700",
            "--token-file",
            &token.display().to_string(),
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(stderr.contains("use https"), "{stderr}");
    assert!(!desk.home.join(".config/vessel/credentials.json").exists());

    // A sign-in kept from before is refused the same way.
    let dir = desk.home.join(".config/vessel");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("credentials.json"),
        r#"{"server":"http://vessel.lab.example:8700","access_token":"a.b.c"}"#,
    )
    .unwrap();
    let out = desk.run(&["ls"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("use https"),
        "{}",
        said(&out)
    );
}

/// A port nobody listens on now, on this machine.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Jupyter listens on the vessel's loopback (issue: "Jupyter listens on
/// every interface with its token in a plain-HTTP URL"): `vessel jupyter`
/// reaches it through a forward over SSH with the pinned host key, our
/// options only, the local end on this machine's loopback, the destination
/// after `--`. The stand-in ssh ends at once, so the CLI says the forward
/// never came up and prints no URL.
#[tokio::test]
async fn jupyter_is_reached_through_an_ssh_forward_to_the_vessels_loopback() {
    let server = fake_orchestrator(honest()).await;
    let desk = Desk::new();
    desk.login(&server).await;
    let local = free_port();
    let out = desk
        .run(&[
            "jupyter",
            "train",
            "--no-browser",
            "--port",
            &local.to_string(),
        ])
        .await;
    let known = desk.home.join(".config/vessel/known_hosts.d/train");
    assert_eq!(
        desk.ssh_argv().expect("ssh ran"),
        [
            "-o".to_string(),
            format!("UserKnownHostsFile={}", known.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "ExitOnForwardFailure=yes".into(),
            "-N".into(),
            "-L".into(),
            format!("127.0.0.1:{local}:127.0.0.1:8888"),
            "-l".into(),
            "alice".into(),
            "--".into(),
            "10.0.0.9".into(),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("10.0.0.9 ssh-ed25519 {KEY}\n")
    );
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ssh ended before the forward was up"),
        "{}",
        said(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "a URL without a forward: {}",
        said(&out)
    );
}

/// Without `--port` the local port is the vessel's; a URL whose token is
/// not plain letters and digits is refused before ssh starts.
#[tokio::test]
async fn jupyter_keeps_the_port_and_refuses_a_token_that_is_not_the_orchestrators() {
    let desk = Desk::new();
    let server = fake_orchestrator(hostile(json!({
        "jupyter_url": "http://127.0.0.1:8888/lab?token=x%26next%3Dhttp%3A%2F%2Fevil"
    })))
    .await;
    desk.login(&server).await;
    let out = desk.run(&["jupyter", "train", "--no-browser"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ssh.jupyter_url"),
        "{}",
        said(&out)
    );
    assert_eq!(desk.ssh_argv(), None, "ssh ran with a hostile URL");

    let port = free_port();
    let server = fake_orchestrator(hostile(json!({
        "jupyter_url": format!("http://127.0.0.1:{port}/lab?token=0123abcd")
    })))
    .await;
    desk.login(&server).await;
    desk.run(&["jupyter", "train", "--no-browser"]).await;
    let argv = desk.ssh_argv().expect("ssh ran");
    assert!(
        argv.contains(&format!("127.0.0.1:{port}:127.0.0.1:{port}")),
        "{argv:?}"
    );
}

#[tokio::test]
async fn jupyter_has_help_that_says_why_it_forwards() {
    let desk = Desk::new();
    let out = desk.run(&["jupyter", "--help"]).await;
    assert!(out.status.success(), "{}", said(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["127.0.0.1", "--port", "--no-browser", "Ctrl-C", "ssh -L"] {
        assert!(help.contains(needle), "no {needle} in:\n{help}");
    }
}
