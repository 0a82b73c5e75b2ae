//! The test rig: a fresh database, a Docker network of the test's own, test
//! hosts (containers running sshd with the engine's socket, reached over real
//! SSH with pinned host keys), an orchestrator built in-process, and a
//! researcher with a real SSH key.
//!
//! A dev-only crate so the end-to-end tests (`tests/e2e`) and the benches
//! (`bench/`) share one rig instead of including its source by path. The
//! fakes of the outside services live next to it: [`fake_slack`],
//! [`fake_tailnet`] and the metrics side in [`prometheus`]; the identity
//! provider is a real one, [`glewlwyd`].

pub mod browser;
pub mod fake_slack;
pub mod fake_tailnet;
pub mod figures;
pub mod glewlwyd;
pub mod prometheus;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vessel_orchestrator::api::auth;
use vessel_orchestrator::config::Config;
use vessel_orchestrator::startup::Application;

pub const TEST_HOST_IMAGE: &str = "vessel/testhost:latest";
pub const VESSEL_IMAGE: &str = "vessel/base:latest";
/// The service key pair every rig uses (tests only): the bot and `token()`
/// sign with the private half; the orchestrator is given the public half.
pub const SERVICE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHc5VKgns2U3K9aMOsHbT4Y0jydLl4SuDnNsiI0Cj7u2
-----END PRIVATE KEY-----
";
pub const SERVICE_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAV7hCdPe+3zliZ9BQx4XoFmzxqGAqArfQV0DHAPmsbuc=
-----END PUBLIC KEY-----
";
/// The private key's secret line: what must never appear in a log.
pub const SERVICE_KEY_SECRET: &str =
    "MC4CAQAwBQYDK2VwBCIEIHc5VKgns2U3K9aMOsHbT4Y0jydLl4SuDnNsiI0Cj7u2";
/// Subjects the rig's orchestrator knows as admins: the tests' admins and
/// the Slack tests' `UBOSS`.
pub const ADMINS: &[&str] = &[
    "root-admin",
    "matrix-admin",
    "UBOSS",
    "auth0|root@lab.example.auth0.com",
];

/// The bot's `[auth]` table for this rig.
pub fn bot_auth_toml() -> String {
    format!("[auth]\nprivate_key = \"\"\"\n{SERVICE_KEY}\"\"\"\n")
}

/// Where the project's Postgres is; `scripts/ensure-postgres.sh` makes it.
fn admin_database_url() -> String {
    std::env::var("VESSEL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://vessel:vessel@127.0.0.1:5432/postgres".into())
}

/// Runs a command, returns stdout; fails with stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One of the workspace's binaries, next to the executable running this
/// code, which is the test or bench that links this crate
/// (target/debug/deps/e2e-… → target/debug/NAME; a bench runs from
/// target/release/deps, so it finds release builds).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join(name))
        .context("no target dir")?;
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build the workspace first",
        path.display()
    );
    Ok(path)
}

/// A container's address on a Docker network.
pub fn address_on(network: &str, container: &str) -> Result<String> {
    docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ])
}

pub fn docker(args: &[&str]) -> Result<String> {
    run("docker", args)
}

/// Builds `image` from vessel/base by running `script` in it (no registry,
/// no Dockerfile: a container, a commit, the container removed).
pub fn derive_image(image: &str, builder: &str, script: &str) -> Result<()> {
    docker(&[
        "run",
        "--name",
        builder,
        "--entrypoint",
        "/bin/sh",
        VESSEL_IMAGE,
        "-c",
        script,
    ])?;
    docker(&["commit", builder, image])?;
    docker(&["rm", "-f", builder])?;
    Ok(())
}

/// Waits for `check` to hold, polling, until `deadline` passes.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct HostDecl {
    pub name: String,
    pub queue: String,
    pub gpus: usize,
    /// Vessels join the tailnet instead of getting an address of ours.
    pub tailscale: bool,
    /// What the stand-in `nvidia-smi` prints instead of `gpus` well-formed
    /// lines (a host whose driver, or whoever replaced it, lies).
    pub nvidia_smi: Option<String>,
}

/// A CPU host whose vessels join the tailnet (`[tailnet]` in extra_config).
pub fn tailscale_host(name: &str) -> HostDecl {
    HostDecl {
        tailscale: true,
        ..cpu_host(name)
    }
}

pub fn gpu_host(name: &str, gpus: usize, queue: &str) -> HostDecl {
    HostDecl {
        name: name.into(),
        queue: queue.into(),
        gpus,
        tailscale: false,
        nvidia_smi: None,
    }
}

pub fn cpu_host(name: &str) -> HostDecl {
    HostDecl {
        name: name.into(),
        queue: "cpu".into(),
        gpus: 0,
        tailscale: false,
        nvidia_smi: None,
    }
}

pub struct TestHost {
    pub name: String,
    pub container: String,
    pub address: String,
}

pub struct Options {
    pub workers: usize,
    pub ready_timeout: &'static str,
    /// More orchestrator config, appended (e.g. `[[auth.oidc]]` tables).
    pub extra_config: String,
    /// When hosts are probed (the watchdog's period): a cron expression.
    pub probe_schedule: &'static str,
    /// The undertaker's clock; the real one when None.
    pub clock: Option<vessel_orchestrator::clock::ManualClock>,
    /// Make the rig's network with inter-container traffic on, as Docker's
    /// default is (the orchestrator must refuse it).
    pub network_icc: bool,
    /// More `[queues.3090]` keys (the line's limits and timings).
    pub queue_3090: String,
    /// Build the in-process orchestrator. Off for a test that runs the
    /// orchestrator elsewhere (a container) against the rig's hosts: it
    /// sets [`Rig::base_url`].
    pub orchestrator: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 4,
            ready_timeout: "30s",
            extra_config: String::new(),
            probe_schedule: vessel_orchestrator::schedule::NEVER,
            clock: None,
            network_icc: false,
            queue_3090: String::new(),
            orchestrator: true,
        }
    }
}

pub struct Rig {
    pub id: String,
    pub dir: PathBuf,
    pub network: String,
    pub hosts: Vec<TestHost>,
    pub app: Option<Application>,
    pub http: reqwest::Client,
    pub db: sqlx::PgPool,
    pub user_key: PathBuf,
    pub config_text: String,
    /// The `[[hosts]]` tables of `config_text`: a hosts file's contents.
    pub hosts_toml: String,
    /// Where the API is when the orchestrator is not the in-process one.
    pub base_url: Option<String>,
}

fn check_images() -> Result<()> {
    for image in [TEST_HOST_IMAGE, VESSEL_IMAGE] {
        if docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_err() {
            bail!("image {image} is missing: run scripts/ensure-rig.sh first");
        }
    }
    Ok(())
}

/// Writes `text` to a file only its owner may read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The stand-in `nvidia-smi`'s lines for a host: its own, or UUIDs as
/// nvidia-smi prints them (GPU- and hex), unique per rig (the id after its
/// `t` is hex), host and index.
fn gpus_csv(id: &str, n: usize, decl: &HostDecl) -> String {
    match &decl.nvidia_smi {
        Some(lines) => lines.clone(),
        None => (0..decl.gpus)
            .map(|i| {
                format!(
                    "{i}, GPU-{}-{n:04x}-{i:04x}, NVIDIA GeForce RTX 3090, 24576 MiB, 00000000:{:02X}:00.0\n",
                    &id[1..],
                    i + 1
                )
            })
            .collect(),
    }
}

/// The orchestrator's config for a rig: its database, the test queues, the
/// hosts' tables and the test's extra keys.
fn config_text(id: &str, options: &Options, host_tables: &str, key_file: &Path) -> String {
    let extra = options.extra_config.replace(
        "dev_sign_in = true",
        &format!(
            "dev_sign_in = true\ndev_sign_in_key_file = \"{}\"",
            key_file.display()
        ),
    );
    let mut text = format!(
        r#"
listen = "127.0.0.1:0"
database_url = "{db}"
fleet = "{id}"
[auth]
service_public_key = """
{SERVICE_PUBLIC_KEY}"""
admins = [{admins}]
[auth.machines.prometheus]
perms = ["fleet:read"]
max_token_ttl = "365d"
[conductor]
workers = {workers}
max_attempts = 2
backoff = "100ms"
lease = "5s"
ready_timeout = "{ready}"
ssh_timeout = "5s"
probe_schedule = "{probe}"
[queues.3090]
gpus = 1
cpus = 1
memory = "1G"
image = "{VESSEL_IMAGE}"
# The failure and shutdown tests' images: one allowed but never built, the
# others built by the tests.
images = ["vessel/absent:1", "vessel/mute:*", "vessel/slow-sshd:*"]
lifetime = "1d"
max_lifetime = "7d"
{queue_3090}
[queues.cpu]
gpus = 0
cpus = 1
memory = "1G"
image = "{VESSEL_IMAGE}"
# The tailnet tests' stand-in image and the readiness test's sshd with a
# host key of its own, built per test.
images = ["vessel/ts-standin:*", "vessel/rogue-sshd:*"]
# The CPU undertaker test is the burying queue's.
idle_action = "bury"
{host_tables}
{extra}"#,
        db = database_url(id),
        admins = ADMINS
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", "),
        workers = options.workers,
        ready = options.ready_timeout,
        probe = options.probe_schedule,
        queue_3090 = options.queue_3090,
    );
    // Periodic jobs the test drives by hand (or not at all) must not fire
    // on the wall clock mid-test; a test that wants one names its section.
    for section in ["reconciler", "undertaker"] {
        if !options.extra_config.contains(&format!("[{section}]")) {
            text.push_str(&format!(
                "\n[{section}]\nschedule = \"{}\"\n",
                vessel_orchestrator::schedule::NEVER
            ));
        }
    }
    text
}

impl Rig {
    pub async fn start(decls: &[HostDecl]) -> Result<Rig> {
        Rig::start_with(decls, Options::default()).await
    }

    pub async fn start_with(decls: &[HostDecl], options: Options) -> Result<Rig> {
        // Logs land in the test's captured output (RUST_LOG to see more).
        vessel_orchestrator::telemetry::init();
        check_images()?;
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let dir = std::env::temp_dir().join(format!("vessel-{id}"));
        std::fs::create_dir_all(dir.join("homes"))?;

        // The orchestrator's key to the hosts, the hosts' own keys (pinned),
        // and the researcher's key.
        let ops_key = keygen(&dir, "ops")?;
        let user_key = keygen(&dir, "alice")?;

        let network = format!("vessel-{id}");
        let subnet = create_network(&network, &id, options.network_icc)?;
        let mut rig = Rig {
            id: id.clone(),
            dir: dir.clone(),
            network: network.clone(),
            hosts: Vec::new(),
            app: None,
            http: reqwest::Client::new(),
            db: create_database(&id).await?,
            user_key,
            config_text: String::new(),
            hosts_toml: String::new(),
            base_url: None,
        };
        let mut host_tables = String::new();
        let direct = decls.iter().filter(|d| !d.tailscale).count();
        let mut pools = (0..direct).map(|j| pool_slice(&subnet, j, direct));
        for (n, decl) in decls.iter().enumerate() {
            let pool = (!decl.tailscale).then(|| pools.next().expect("one pool per direct host"));
            let (host, table) = rig.start_host(n, decl, &ops_key, &subnet, pool)?;
            host_tables.push_str(&table);
            rig.hosts.push(host);
        }
        for host in &rig.hosts {
            let address = host.address.clone();
            eventually("the test host's sshd", Duration::from_secs(30), || {
                let address = address.clone();
                async move { Ok(ssh_banner(&address).await.then_some(())) }
            })
            .await?;
        }
        // The dev sign-in's key, as an operator keeps it: a file only its
        // owner reads.
        let key_file = dir.join("dev-sign-in.key");
        write_private(&key_file, &uuid::Uuid::new_v4().simple().to_string())?;
        rig.config_text = config_text(&id, &options, &host_tables, &key_file);
        rig.hosts_toml = host_tables;
        let config = Config::from_toml_str(&rig.config_text)?;
        if !options.orchestrator {
            return Ok(rig);
        }
        rig.app = Some(match options.clock {
            Some(clock) => {
                Application::build_with_clock(config, std::sync::Arc::new(clock)).await?
            }
            None => Application::build(config).await?,
        });
        Ok(rig)
    }

    /// `docker run …` for a test host: the rig's network at a fixed
    /// address, the ops key authorised, the engine's socket, its home root
    /// and pinned host key, and its stand-in GPUs.
    #[allow(clippy::too_many_arguments)]
    fn host_run_args(
        &self,
        n: usize,
        decl: &HostDecl,
        container: &str,
        subnet: &str,
        authorized: &str,
        home: &str,
        host_key: &Path,
    ) -> Vec<String> {
        let (key, key_pub) = (host_key.display(), host_key.with_extension("pub"));
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            container.to_string(),
            "--network".into(),
            self.network.clone(),
            // A fixed address, so a host that is stopped and started
            // again is where the config says it is.
            "--ip".into(),
            subnet.replace(".0/24", &format!(".{}", 10 + n)),
            "--label".into(),
            format!("vessel.test={}", self.id),
            "-e".into(),
            format!("AUTHORIZED_KEYS={}", authorized.trim()),
            "-v".into(),
            "/var/run/docker.sock:/var/run/docker.sock".into(),
            "-v".into(),
            format!("{home}:{home}"),
            "-v".into(),
            format!("{key}:/etc/ssh/ssh_host_ed25519_key:ro"),
            "-v".into(),
            format!("{}:/etc/ssh/ssh_host_ed25519_key.pub:ro", key_pub.display()),
        ];
        if decl.gpus > 0 || decl.nvidia_smi.is_some() {
            args.push("-e".into());
            args.push(format!("GPUS_CSV={}", gpus_csv(&self.id, n, decl)));
        }
        args.push(TEST_HOST_IMAGE.into());
        args
    }

    /// Starts the `n`th test host (a container running sshd, with the
    /// engine's socket and its home root) and returns it with its
    /// `[[hosts]]` table.
    fn start_host(
        &self,
        n: usize,
        decl: &HostDecl,
        ops_key: &Path,
        subnet: &str,
        pool: Option<String>,
    ) -> Result<(TestHost, String)> {
        let host_key = keygen(&self.dir, &format!("host-{}", decl.name))?;
        let container = format!("vessel-{}-{}", self.id, decl.name);
        let authorized = std::fs::read_to_string(ops_key.with_extension("pub"))?;
        let home_root = self.dir.join("homes").join(&decl.name);
        std::fs::create_dir_all(&home_root)?;
        let home = home_root.display().to_string();
        let args = self.host_run_args(n, decl, &container, subnet, &authorized, &home, &host_key);
        let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args_ref)?;
        let address = address_on(&self.network, &container)?;
        let pinned = std::fs::read_to_string(host_key.with_extension("pub"))?;
        let pinned: Vec<&str> = pinned.split_whitespace().take(2).collect();
        let network_table = match pool {
            None => format!(
                "mode = \"tailscale\"\ndocker_network = \"{}\"\nsubnet = \"{subnet}\"",
                self.network
            ),
            Some(pool) => format!(
                "mode = \"direct\"\ndocker_network = \"{}\"\nsubnet = \"{subnet}\"\npool = \"{pool}\"",
                self.network
            ),
        };
        let table = format!(
            r#"
[[hosts]]
name = "{name}"
queue = "{queue}"
home_root = "{home}"
gpu_runtime = "none"
[hosts.ssh]
address = "{address}:22"
user = "root"
key_path = "{ops}"
host_key = "{pinned}"
[hosts.network]
{network_table}
"#,
            name = decl.name,
            queue = decl.queue,
            ops = ops_key.display(),
            pinned = pinned.join(" "),
        );
        let host = TestHost {
            name: decl.name.clone(),
            container,
            address,
        };
        Ok((host, table))
    }

    /// The dev sign-in's key (`[portal] dev_sign_in_key_file`).
    pub fn dev_key(&self) -> String {
        std::fs::read_to_string(self.dir.join("dev-sign-in.key")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        match &self.base_url {
            Some(base) => format!("{base}{path}"),
            None => format!("{}{path}", self.app.as_ref().expect("started").url()),
        }
    }

    pub fn app(&self) -> &Application {
        self.app.as_ref().expect("started")
    }

    pub fn token(&self, subject: &str, perms: &[&str]) -> String {
        self.token_for(subject, perms, 300)
    }

    /// A service token that lives `ttl_secs`.
    pub fn token_for(&self, subject: &str, perms: &[&str], ttl_secs: u64) -> String {
        auth::issue(
            SERVICE_KEY,
            "vessel-bot",
            "vessel-orchestrator",
            subject,
            perms,
            ttl_secs,
        )
        .expect("token")
    }

    pub fn researcher(&self, subject: &str) -> String {
        self.token(
            subject,
            &[
                auth::perm::VESSELS_CREATE,
                auth::perm::VESSELS_READ,
                auth::perm::FLEET_READ,
            ],
        )
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// Registers the researcher's key for `subject`.
    pub async fn add_key(&self, token: &str) -> Result<()> {
        let public = std::fs::read_to_string(self.user_key.with_extension("pub"))?;
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/me/keys",
                token,
                Some(json!({ "public_key": public.trim() })),
            )
            .await?;
        if status != 201 && status != 200 {
            bail!("adding the key: {status} {body}");
        }
        Ok(())
    }

    pub async fn create(&self, token: &str, body: Value) -> Result<(u16, Value)> {
        self.call(reqwest::Method::POST, "/v1/vessels", token, Some(body))
            .await
    }

    pub async fn show(&self, token: &str, vessel: &str) -> Result<Value> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/vessels/{vessel}"),
                token,
                None,
            )
            .await?;
        if status != 200 {
            bail!("show {vessel}: {status} {body}");
        }
        Ok(body)
    }

    /// Creates a vessel and waits for it to run; returns it.
    pub async fn launch(&self, token: &str, body: Value) -> Result<Value> {
        let (status, v) = self.create(token, body).await?;
        if status != 202 {
            bail!("create: {status} {v}");
        }
        let id = v["id"].as_str().context("id")?.to_string();
        let v = self
            .wait_state(token, &id, &["running", "failed"], Duration::from_secs(60))
            .await?;
        if v["state"] != "running" {
            bail!("the vessel did not run: {v}");
        }
        Ok(v)
    }

    /// Kills a vessel and waits until it is buried; returns it.
    pub async fn kill(&self, token: &str, id: &str) -> Result<Value> {
        let (status, body) = self
            .call(
                reqwest::Method::DELETE,
                &format!("/v1/vessels/{id}"),
                token,
                None,
            )
            .await?;
        if status != 202 {
            bail!("kill {id}: {status} {body}");
        }
        self.wait_state(token, id, &["buried"], Duration::from_secs(30))
            .await
    }

    /// Waits until the vessel reaches one of `states`; returns it.
    pub async fn wait_state(
        &self,
        token: &str,
        vessel: &str,
        states: &[&str],
        deadline: Duration,
    ) -> Result<Value> {
        let last = std::sync::Mutex::new(Value::Null);
        let result = eventually(
            &format!("vessel {vessel} to be {states:?}"),
            deadline,
            || async {
                let v = self.show(token, vessel).await?;
                *last.lock().unwrap() = v.clone();
                Ok(states
                    .contains(&v["state"].as_str().unwrap_or(""))
                    .then_some(v))
            },
        )
        .await;
        result.with_context(|| format!("last seen: {}", last.lock().unwrap()))
    }

    pub async fn fleet(&self, token: &str) -> Result<Value> {
        let (status, body) = self
            .call(reqwest::Method::GET, "/v1/fleet", token, None)
            .await?;
        if status != 200 {
            bail!("fleet: {status} {body}");
        }
        Ok(body)
    }

    /// Containers of this rig's fleet carrying a vessel id.
    pub fn vessel_containers(&self) -> Result<Vec<String>> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=vessel.fleet={}", self.id),
            "--format",
            "{{.Names}}",
        ])?;
        Ok(out
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect())
    }

    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts.iter().find(|h| h.name == name).expect("host")
    }

    /// `ssh` arguments that log in with the config and known_hosts line the
    /// API gave, host key checking on, and run `command`.
    pub fn ssh_args(
        &self,
        access: &Value,
        command: &str,
        timeout_secs: u32,
    ) -> Result<Vec<String>> {
        let alias = access["host_alias"].as_str().context("alias")?;
        let cfg = self.dir.join(format!("ssh-config-{alias}"));
        let known = cfg.with_extension("known_hosts");
        std::fs::write(&cfg, access["config"].as_str().context("config")?)?;
        std::fs::write(
            &known,
            format!(
                "{}\n",
                access["known_hosts"].as_str().context("known_hosts")?
            ),
        )?;
        Ok([
            "-F",
            &cfg.display().to_string(),
            "-o",
            &format!("UserKnownHostsFile={}", known.display()),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            &format!("ConnectTimeout={timeout_secs}"),
            "-i",
            &self.user_key.display().to_string(),
            alias,
            command,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect())
    }

    /// Logs in as the researcher would and runs `command`.
    pub fn ssh(&self, access: &Value, command: &str) -> Result<String> {
        let args = self.ssh_args(access, command, 10)?;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run("ssh", &refs)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Stop the orchestrator before pulling its hosts away.
        self.app.take();
        let ours = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=vessel.fleet={}", self.id),
        ])
        .unwrap_or_default();
        let hosts = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=vessel.test={}", self.id),
        ])
        .unwrap_or_default();
        let ids: Vec<&str> = ours
            .lines()
            .chain(hosts.lines())
            .filter(|l| !l.is_empty())
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = docker(&args);
        }
        let _ = docker(&["network", "rm", &self.network]);
        // The database too: a test run makes dozens. FORCE ends the pools'
        // connections (Postgres 13+).
        let _ = run(
            "psql",
            &[
                &admin_database_url(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS vessel_{} WITH (FORCE)", self.id),
            ],
        );
        // Homes were created by containers as other uids; the dir is ours.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keygen(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            name,
            "-f",
            &path.display().to_string(),
        ],
    )?;
    Ok(path)
}

/// A /24 of the test's own, picked so parallel tests do not collide: Docker
/// refuses an overlapping subnet, and we take the next one. Vessels share it
/// with the test hosts, so it is made as the README tells operators to: with
/// inter-container traffic off (unless `icc`).
fn create_network(name: &str, id: &str, icc: bool) -> Result<String> {
    let seed = id
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    for attempt in 0..64u32 {
        let n = (seed.wrapping_add(attempt.wrapping_mul(7919))) % (64 * 256);
        let subnet = format!("10.{}.{}.0/24", 160 + n / 256, n % 256);
        // Docker's own addresses (the test hosts) stay in the lower half;
        // the orchestrator hands out the upper half.
        let range = subnet.replace(".0/24", ".0/25");
        match docker(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            &subnet,
            "--ip-range",
            &range,
            "--opt",
            &format!("com.docker.network.bridge.enable_icc={icc}"),
            "--label",
            &format!("vessel.test={id}"),
            name,
        ]) {
            Ok(_) => return Ok(subnet),
            Err(e) if e.to_string().contains("overlap") => continue,
            Err(e) => return Err(e),
        }
    }
    bail!("no free /24 for the test network")
}

/// The `j`th of `of` disjoint pools in the upper half of a test /24 (the
/// lower half is Docker's, for the test hosts). All the rig's hosts are one
/// Docker engine on one network, as in the quick start: a shared pool would
/// hand one address to two vessels, and the config refuses overlaps.
fn pool_slice(subnet: &str, j: usize, of: usize) -> String {
    let bits = of.max(1).next_power_of_two().trailing_zeros();
    assert!(bits <= 5, "at most 32 direct hosts per test network");
    let size = 128 >> bits;
    subnet.replace(".0/24", &format!(".{}/{}", 128 + j * size, 25 + bits))
}

fn database_url(id: &str) -> String {
    let admin = admin_database_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/vessel_{id}")
}

async fn create_database(id: &str) -> Result<sqlx::PgPool> {
    let admin = sqlx::PgPool::connect(&admin_database_url())
        .await
        .context("cannot reach Postgres: run scripts/ensure-postgres.sh")?;
    // The id is ours (hex), not input: safe to format into the statement.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE vessel_{id}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(sqlx::PgPool::connect(&database_url(id)).await?)
}

pub async fn ssh_banner(address: &str) -> bool {
    use tokio::io::AsyncReadExt;
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((address, 22)).await.ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"SSH-"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}
