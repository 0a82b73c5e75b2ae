//! The deployment in `manifests/`, run as an operator would: the compose
//! stack (images from the project's scripts) on the machine's engine makes
//! a vessel one logs into and the bot in it tells its owner; `check-config`
//! names a bad key without starting; the systemd units pass
//! `systemd-analyze verify`; a `pg_dump` restored into a new database
//! starts an orchestrator with its vessels intact.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use vessel_orchestrator::config::Config;
use vessel_orchestrator::startup::Application;

use crate::fake_slack::{text_of, FakeSlack};
use crate::rig::{self, eventually, gpu_host, Options, Rig};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put the binaries this test run uses (target/debug, built by
/// scripts/test.sh before the tests): the images are made from these, so
/// the images test this build, and CI compiles nothing twice.
fn bin_dir() -> Result<PathBuf> {
    Ok(rig::binary("vessel-orchestrator")?
        .parent()
        .context("bin dir")?
        .to_path_buf())
}

fn script(name: &str, args: &[&str]) -> Result<String> {
    rig::run(
        &repo().join("scripts").join(name).display().to_string(),
        args,
    )
}

/// Free loopback ports for the services that share the host's network.
fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    let mut ports = [0; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| path.display().to_string())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A compose project of the test's own; `down -v` (containers, network,
/// volumes) when dropped, however the test ends.
struct Stack {
    project: String,
    dir: PathBuf,
}

impl Stack {
    fn compose(&self, args: &[&str]) -> Result<Output> {
        Command::new("docker-compose")
            .current_dir(&self.dir)
            .args(["-p", &self.project, "-f", "compose.yaml", "-f", "test.yaml"])
            .args(args)
            // A random loopback port, not the one a lab's Prometheus has.
            .env("VESSEL_PROMETHEUS_PUBLISH", "127.0.0.1:")
            .output()
            .context("cannot run docker-compose")
    }

    fn compose_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.compose(args)?;
        if !out.status.success() {
            bail!(
                "docker-compose {}: {}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn logs(&self) -> String {
        self.compose(&["logs", "--no-color", "--tail", "30"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Each service's health as Docker reports it.
    fn health(&self) -> Result<Vec<(String, String)>> {
        let ids = self.compose_ok(&["ps", "-q"])?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![
            "inspect",
            "-f",
            "{{index .Config.Labels \"com.docker.compose.service\"}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
        ];
        args.extend(ids);
        Ok(rig::docker(&args)?
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(s, h)| (s.to_string(), h.to_string()))
            .collect())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "--timeout", "20"]);
    }
}

/// The deployment directory the README describes, for the rig's hosts:
/// compose.yaml and the Prometheus files copied from manifests/, configs,
/// and secrets/ (0700, files 0644: compose mounts each file as it is).
///
/// One change in `test.yaml` (and the API's port not published), and why: here the lab's hosts and vessels are
/// containers on a bridge of this engine with inter-container traffic off
/// (as the orchestrator insists), and Docker drops traffic from another
/// bridge too, so only the host's own network namespace reaches a vessel's
/// sshd. The orchestrator (readiness proves the vessel's host key there) and
/// the bot (which talks to it) run on the host's network; Postgres is
/// published on a loopback port for them. In a lab, hosts and vessels are
/// on the LAN or the tailnet, which the compose network reaches as it is.
fn write_deployment(
    rig: &Rig,
    dir: &Path,
    [api, bot, pg]: [u16; 3],
    slack: &FakeSlack,
) -> Result<()> {
    let manifests = repo().join("manifests");
    std::fs::create_dir_all(dir)?;
    // The API's port is the one line taken out: Docker refuses to publish
    // a port of a container on the host's network.
    let compose = std::fs::read_to_string(manifests.join("compose.yaml"))?;
    let published = "    ports:\n      - \"${VESSEL_API_PUBLISH:-127.0.0.1:8700}:8700\"\n";
    anyhow::ensure!(
        compose.contains(published),
        "compose.yaml publishes the API differently now"
    );
    write(
        &dir.join("compose.yaml"),
        &compose.replace(published, ""),
        0o644,
    )?;
    for f in ["prometheus.yml", "vessel-alerts.yml"] {
        let text = std::fs::read_to_string(manifests.join("prometheus").join(f))?;
        write(&dir.join("prometheus").join(f), &text, 0o644)?;
    }
    write(
        &dir.join("test.yaml"),
        &format!(
            r#"version: "3.8"
services:
  postgres:
    ports: ["127.0.0.1:{pg}:5432"]
  vessel-orchestrator:
    network_mode: host
    environment:
      HEALTH_URL: http://127.0.0.1:{api}/health
  vessel-bot:
    network_mode: host
    environment:
      VESSEL_BOT_ORCHESTRATOR_URL: http://127.0.0.1:{api}
      HEALTH_URL: http://127.0.0.1:{bot}/health
"#
        ),
        0o644,
    )?;
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets)?;
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    let prometheus_token = rig.token_for("prometheus", &["fleet:read"], 3600);
    let ops_key = std::fs::read_to_string(rig.dir.join("ops"))?;
    for (name, text) in [
        ("postgres-password", format!("{password}\n")),
        (
            "vessel-database-url",
            format!("postgres://vessel:{password}@127.0.0.1:{pg}/vessel"),
        ),
        ("vessel-service.pub", rig::SERVICE_PUBLIC_KEY.to_string()),
        ("vessel-service.key", rig::SERVICE_KEY.to_string()),
        ("hosts_ed25519", ops_key),
        ("vessel-prometheus-token", prometheus_token),
        ("slack-signing-secret", "deploy-test-signing-secret".into()),
        ("slack-bot-token", "xoxb-deploy-test".into()),
        ("slack-app-token", "xapp-deploy-test".into()),
    ] {
        write(&secrets.join(name), &text, 0o644)?;
    }
    // The rig's host tables, with the hosts' key where the secret lands.
    let hosts = rig.hosts_toml.replace(
        &rig.dir.join("ops").display().to_string(),
        "/etc/vessel/hosts_ed25519",
    );
    write(&dir.join("hosts.toml"), &hosts, 0o644)?;
    write(
        &dir.join("vessel.toml"),
        &format!(
            r#"listen = "127.0.0.1:{api}"
database_url = {{ file = "/run/secrets/vessel-database-url" }}
fleet = "{fleet}"
hosts_file = "hosts.toml"
[auth]
service_public_key = {{ file = "/run/secrets/vessel-service.pub" }}
admins = ["UBOSS"]
[auth.machines.prometheus]
perms = ["fleet:read"]
max_token_ttl = "365d"
[conductor]
workers = 2
ready_timeout = "30s"
ssh_timeout = "5s"
[queues.3090]
gpus = 1
cpus = 1
memory = "1G"
image = "{image}"
lifetime = "1d"
max_lifetime = "7d"
"#,
            // The rig's id: its clean-up removes the vessels whatever happens.
            fleet = rig.id,
            image = rig::VESSEL_IMAGE,
        ),
        0o644,
    )?;
    write(
        &dir.join("vessel-bot.toml"),
        &format!(
            r#"orchestrator_url = "http://vessel-orchestrator:8700"
default_queue = "3090"
[auth]
private_key = {{ file = "/run/secrets/vessel-service.key" }}
[slack]
mode = "http"
listen = "127.0.0.1:{bot}"
signing_secret = {{ file = "/run/secrets/slack-signing-secret" }}
bot_token = {{ file = "/run/secrets/slack-bot-token" }}
app_token = {{ file = "/run/secrets/slack-app-token" }}
api_url = "{slack}"
admins = ["UBOSS"]
"#,
            slack = slack.api_url(),
        ),
        0o644,
    )?;
    Ok(())
}

#[tokio::test]
async fn the_compose_stack_runs_a_vessel_one_logs_into_and_the_bot_tells_its_owner() -> Result<()> {
    // Cached when nothing changed (a second or two); the bases are built
    // by scripts/ensure-rig.sh before the tests.
    script("build-images.sh", &["control"])?;
    script(
        "build-service-images.sh",
        &[&bin_dir()?.display().to_string()],
    )?;
    let mut rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            orchestrator: false,
            ..Options::default()
        },
    )
    .await?;
    let slack = FakeSlack::start().await?;
    let ports = free_ports::<3>()?;
    let dir = rig.dir.join("deploy");
    write_deployment(&rig, &dir, ports, &slack)?;
    // Dropped before the rig: the stack goes before its hosts do.
    let stack = Stack {
        project: format!("vessel-deploy-{}", rig.id),
        dir,
    };
    // Returns once Postgres and then the orchestrator are healthy (the
    // bot's and the orchestrator's depends_on).
    stack.compose_ok(&["up", "-d"])?;
    let health = eventually(
        "every service of the stack healthy",
        Duration::from_secs(120),
        || async {
            let health = stack.health()?;
            Ok((health.len() == 4 && health.iter().all(|(_, h)| h == "healthy")).then_some(health))
        },
    )
    .await
    .with_context(|| stack.logs())?;
    let mut services: Vec<&str> = health.iter().map(|(s, _)| s.as_str()).collect();
    services.sort();
    assert_eq!(
        services,
        [
            "postgres",
            "prometheus",
            "vessel-bot",
            "vessel-orchestrator"
        ]
    );
    // Ours run as the image's unprivileged user, on a read-only root.
    for service in ["vessel-orchestrator", "vessel-bot"] {
        let id = stack.compose_ok(&["ps", "-q", service])?;
        let seen = rig::docker(&[
            "inspect",
            "-f",
            "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}",
            id.trim(),
        ])?;
        assert_eq!(seen, "990:990 true [ALL]", "{service}");
    }

    rig.base_url = Some(format!("http://127.0.0.1:{}", ports[0]));
    let token = rig.researcher("UDEPLOY");
    rig.add_key(&token).await?;
    let vessel = rig
        .launch(&token, json!({ "queue": "3090", "name": "deployed" }))
        .await
        .with_context(|| stack.logs())?;
    let out = rig.ssh(&vessel["ssh"], "id -un; echo \"$NVIDIA_VISIBLE_DEVICES\"")?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].starts_with("GPU-"),
        "one of the host's GPUs: {out}"
    );

    // The bot in the stack reads the orchestrator's events and DMs the owner.
    slack
        .wait_for("chat.postMessage", Duration::from_secs(60), |b| {
            b["channel"] == "DUDEPLOY" && text_of(b).contains("deployed is running")
        })
        .await
        .with_context(|| stack.logs())?;

    // The README's backup works against the stack's Postgres.
    let dump = stack.compose(&[
        "exec",
        "-T",
        "postgres",
        "pg_dump",
        "-U",
        "vessel",
        "--format=custom",
        "vessel",
    ])?;
    assert!(
        dump.status.success() && dump.stdout.starts_with(b"PGDMP"),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    // The services' role owns its database and nothing more: a leaked
    // password is not a superuser's (who reads files and runs programs).
    let role = stack.compose(&[
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        "vessel",
        "-d",
        "vessel",
        "-qtAc",
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
    ])?;
    assert_eq!(
        String::from_utf8_lossy(&role.stdout).trim(),
        "f",
        "{role:?}"
    );

    // State lives in the stack's Postgres: a restarted orchestrator (a stop
    // by SIGTERM, then a start) still has the vessel, running.
    stack.compose_ok(&["restart", "vessel-orchestrator"])?;
    let again = rig
        .wait_state(&token, "deployed", &["running"], Duration::from_secs(60))
        .await?;
    assert_eq!(again["id"], vessel["id"]);
    rig.kill(&token, vessel["id"].as_str().context("id")?)
        .await?;
    assert!(rig.vessel_containers()?.is_empty());
    drop(stack);
    Ok(())
}

fn run_status(bin: &str, args: &[&str]) -> Result<(bool, String, String)> {
    let out = Command::new(bin_dir()?.join(bin))
        .args(args)
        // Env overrides would change what is checked.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn check_config_passes_a_good_config_and_names_the_bad_key() -> Result<()> {
    let dir = tempdir("check-config")?;
    rig::run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &dir.join("hosts_ed25519").display().to_string(),
        ],
    )?;
    let host_key = std::fs::read_to_string(dir.join("hosts_ed25519.pub"))?;
    let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    let hosts = |queue: &str, key: &str| {
        format!(
            r#"[[hosts]]
name = "gpu-07"
queue = "{queue}"
home_root = "/srv/homes"
gpu_runtime = "nvidia"
[hosts.ssh]
address = "10.0.40.17:22"
user = "vessel"
key_path = "{key}"
host_key = "{host_key}"
[hosts.network]
mode = "direct"
docker_network = "vessels"
subnet = "10.0.40.0/22"
pool = "10.0.42.0/24"
"#,
            host_key = host_key.join(" "),
        )
    };
    let config = |extra: &str| {
        format!(
            r#"listen = "127.0.0.1:8700"
# Nothing listens here: check-config must not connect.
database_url = "postgres://vessel:vessel@127.0.0.1:1/vessel"
hosts_file = "hosts.toml"
[auth]
service_public_key = """
{pem}"""
admins = ["U024BE7LH"]
[queues.3090]
gpus = 1
cpus = 8
memory = "64G"
image = "vessel/base:latest"
{extra}"#,
            pem = rig::SERVICE_PUBLIC_KEY,
        )
    };
    let key = dir.join("hosts_ed25519").display().to_string();
    let path = dir.join("vessel.toml").display().to_string();
    let check = |config_text: String, hosts_text: String| {
        std::fs::write(dir.join("vessel.toml"), config_text)?;
        std::fs::write(dir.join("hosts.toml"), hosts_text)?;
        run_status("vessel-orchestrator", &["--config", &path, "check-config"])
    };

    let (ok, out, err) = check(config(""), hosts("3090", &key))?;
    assert!(ok, "a good config passes: {err}");
    assert!(out.contains("ok (1 hosts, 1 queues"), "{out}");

    // Each bad key is named, and the exit is non-zero.
    let not_a_key = dir.join("not-a-key");
    std::fs::write(&not_a_key, "hello")?;
    for (what, config_text, hosts_text, named) in [
        (
            "a host in no queue",
            config(""),
            hosts("a100", &key),
            "hosts[0].queue",
        ),
        (
            "a missing key file",
            config(""),
            hosts("3090", "/nonexistent/key"),
            "hosts[0].ssh.key_path",
        ),
        (
            "a key file that is not a key",
            config(""),
            hosts("3090", &not_a_key.display().to_string()),
            "hosts[0].ssh.key_path",
        ),
        (
            "a misspelt key",
            config("[conductor]\nworkerz = 3\n"),
            hosts("3090", &key),
            "workerz",
        ),
        (
            "a bad duration",
            config("[conductor]\nlease = \"soon\"\n"),
            hosts("3090", &key),
            "lease",
        ),
    ] {
        let (ok, _, err) = check(config_text, hosts_text)?;
        assert!(!ok, "{what}: check-config passed");
        assert!(
            err.contains(named),
            "{what}: the error does not name `{named}`: {err}"
        );
    }

    // The bot's too.
    let bot = |orchestrator_url: &str| {
        format!(
            "orchestrator_url = \"{orchestrator_url}\"\n{}",
            rig::bot_auth_toml()
        )
    };
    let bot_path = dir.join("vessel-bot.toml").display().to_string();
    std::fs::write(&bot_path, bot("http://127.0.0.1:8700"))?;
    let (ok, out, err) = run_status("vessel-bot", &["--config", &bot_path, "check-config"])?;
    assert!(ok && out.contains("ok"), "{out}{err}");
    std::fs::write(
        &bot_path,
        format!(
            "{}[slack]\nmode = \"sockets\"\n",
            bot("http://127.0.0.1:8700")
        ),
    )?;
    let (ok, _, err) = run_status("vessel-bot", &["--config", &bot_path, "check-config"])?;
    assert!(!ok && err.contains("mode"), "{err}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempdir(what: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "vessel-{what}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[test]
fn the_systemd_units_verify_and_are_hardened() -> Result<()> {
    let dir = tempdir("systemd")?;
    for (unit, bin) in [
        ("vessel-orchestrator.service", "vessel-orchestrator"),
        ("vessel-bot.service", "vessel-bot"),
    ] {
        let text = std::fs::read_to_string(repo().join("manifests/systemd").join(unit))?;
        for hardening in [
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=\n",
        ] {
            assert!(text.contains(hardening), "{unit} lacks {hardening}");
        }
        // verify checks that ExecStart's binary exists: this build's.
        let here = text.replace(
            &format!("/usr/local/bin/{bin}"),
            &bin_dir()?.join(bin).display().to_string(),
        );
        std::fs::write(dir.join(unit), here)?;
    }
    let out = Command::new("systemd-analyze")
        .current_dir(&dir)
        .args([
            "verify",
            "--man=no",
            "vessel-orchestrator.service",
            "vessel-bot.service",
        ])
        .output()
        .context("systemd-analyze (Debian's systemd package) is needed")?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `postgres://…/NAME` for a database NAME next to the rig's.
fn database_url(rig: &Rig, name: &str) -> Result<String> {
    let line = rig
        .config_text
        .lines()
        .find(|l| l.starts_with("database_url = "))
        .context("the rig's database_url")?;
    let url = line.trim_start_matches("database_url = ").trim_matches('"');
    let base = url.rsplit_once('/').context("a path")?.0;
    Ok(format!("{base}/{name}"))
}

/// Drops the restored database however the test ends.
struct Database(String);

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((base, name)) = self.0.rsplit_once('/') {
            let _ = rig::run(
                "psql",
                &[
                    &format!("{base}/postgres"),
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ],
            );
        }
    }
}

#[tokio::test]
async fn a_dump_restored_into_a_new_database_starts_with_its_vessels_intact() -> Result<()> {
    let mut rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let token = rig.researcher("alice");
    rig.add_key(&token).await?;
    let vessel = rig
        .launch(&token, json!({ "queue": "3090", "name": "kept" }))
        .await?;
    let id = vessel["id"].as_str().context("id")?.to_string();

    // The README's backup, taken while the orchestrator runs.
    let original = database_url(&rig, &format!("vessel_{}", rig.id))?;
    let dump = rig.dir.join("vessel.dump");
    rig::run(
        "pg_dump",
        &[
            "--format=custom",
            "--file",
            &dump.display().to_string(),
            &original,
        ],
    )?;
    // The old server is gone; a new database gets the dump.
    rig.app
        .take()
        .context("the rig's orchestrator")?
        .stop()
        .await;
    let restored = Database(database_url(&rig, &format!("vessel_{}_restored", rig.id))?);
    let (base, name) = restored.0.rsplit_once('/').context("url")?;
    rig::run(
        "psql",
        &[
            &format!("{base}/postgres"),
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ],
    )?;
    rig::run(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            &restored.0,
            &dump.display().to_string(),
        ],
    )?;

    // The orchestrator on it: start-up migrates (nothing to do) and
    // reconciles against the hosts, which still run the vessel.
    let config_text = rig.config_text.replace(&original, &restored.0);
    assert_ne!(config_text, rig.config_text);
    rig.app = Some(Application::build(Config::from_toml_str(&config_text)?).await?);
    let seen = rig.show(&token, &id).await?;
    assert_eq!(seen["state"], "running", "{seen}");
    assert_eq!(seen["name"], "kept");
    // A reconciliation later still finds its container (nothing buried),
    // and its owner still logs in with the host key pinned before.
    rig.app().reconciler.run_once().await?;
    assert_eq!(rig.show(&token, &id).await?["state"], "running");
    let out = rig.ssh(&seen["ssh"], "id -un")?;
    assert_eq!(out.trim(), "alice");
    assert_eq!(seen["ssh"]["known_hosts"], vessel["ssh"]["known_hosts"]);
    // Its claims came back too: its GPU is held until it is killed.
    let fleet = rig.fleet(&token).await?;
    assert_eq!(fleet["queues"]["3090"]["gpus_free"], 1, "{fleet}");
    rig.kill(&token, &id).await?;
    let fleet = rig.fleet(&token).await?;
    assert_eq!(fleet["queues"]["3090"]["gpus_free"], 2, "{fleet}");
    Ok(())
}
