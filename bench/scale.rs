//! Scale, measured (`cargo bench --bench scale`, or `cargo test --bench
//! scale` for a debug build): 50 test hosts (containers running sshd with
//! the engine's socket, the rig's) registered in an orchestrator.
//!
//! 1. One survey's time, in this process: cold (a new host pool: 50 SSH
//!    handshakes and probes) and warm (the kept connections).
//! 2. The orchestrator binary as a process: its RSS (`VmRSS`, and the peak
//!    `VmHWM`) and open sockets (`/proc/PID/fd` against `/proc/PID/net/tcp`:
//!    SSH to hosts, Postgres, the rest) idle with no hosts, idle with 50,
//!    and under 100 concurrent creates through the API.
//! 3. The bot binary (HTTP mode, against the fake Slack) idle and under 100
//!    concurrent signed `/vessel create` commands.
//!
//! Prints the figures and what they make at 1,000 hosts. Asserts nothing
//! about timings: this machine is shared, and its hosts are one engine.
//!
//! The rig gives direct-mode hosts disjoint address pools in one /24, at
//! most 32; the other 18 hosts are tailnet-mode CPU hosts (a fake tailnet
//! API), surveyed like the rest but never placed on. The 32 GPU hosts have
//! one GPU each: 100 creates make 32 vessels and a line of 68.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::process::{Child, Command};
use vessel_orchestrator::config::Config;
use vessel_orchestrator::hosts::HostPool;
use vessel_testrig::fake_slack::FakeSlack;
use vessel_testrig::fake_tailnet::{FakeTailnet, API_KEY};
use vessel_testrig::figures::{ms, percentile};
use vessel_testrig::{binary, eventually, gpu_host, tailscale_host, HostDecl, Options, Rig};

const GPU_HOSTS: usize = 32;
const TAILNET_HOSTS: usize = 18;
const CREATES: usize = 100;
const SIGNING: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// What one look at a process finds.
#[derive(Debug, Default, Clone, Copy)]
struct Look {
    rss_kib: u64,
    hwm_kib: u64,
    sockets: usize,
    ssh: usize,
    postgres: usize,
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{key} of {pid}"))
}

/// The socket inodes a process holds, and the remote port of each TCP one
/// (its network namespace's tables: ours, the process runs beside us).
fn look(pid: u32) -> Result<Look> {
    let mut inodes = HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = std::fs::read_link(fd?.path()) else {
            continue;
        };
        if let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    let mut look = Look {
        rss_kib: status_kib(pid, "VmRSS:")?,
        hwm_kib: status_kib(pid, "VmHWM:")?,
        sockets: inodes.len(),
        ..Look::default()
    };
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))?;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !inodes.contains(f[9]) {
                continue;
            }
            let port = f[2]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            match port {
                Some(22) => look.ssh += 1,
                Some(5432) => look.postgres += 1,
                _ => {}
            }
        }
    }
    Ok(look)
}

/// The most of each figure over a stretch, sampled every 20 ms.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<Mutex<Look>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new(Look::default()));
        let (s, p) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Ok(l) = look(pid) {
                    let mut m = p.lock().unwrap();
                    m.rss_kib = m.rss_kib.max(l.rss_kib);
                    m.hwm_kib = m.hwm_kib.max(l.hwm_kib);
                    m.sockets = m.sockets.max(l.sockets);
                    m.ssh = m.ssh.max(l.ssh);
                    m.postgres = m.postgres.max(l.postgres);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Sampler { stop, peak, task }
    }

    async fn finish(self) -> Look {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let peak = *self.peak.lock().unwrap();
        peak
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn show(what: &str, l: &Look) {
    println!(
        "  {what:<44} RSS {:6.1} MiB (peak {:6.1})  sockets {:4} (SSH {:3}, Postgres {:2})",
        mib(l.rss_kib),
        mib(l.hwm_kib),
        l.sockets,
        l.ssh,
        l.postgres
    );
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A process of ours, killed when dropped.
struct Proc {
    child: Child,
    pid: u32,
}

impl Proc {
    fn spawn(bin: &str, args: &[&str], log: &Path) -> Result<Proc> {
        let child = Command::new(binary(bin)?)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("pid")?;
        Ok(Proc { child, pid })
    }

    async fn stop(mut self) -> Result<()> {
        vessel_testrig::run("kill", &["-TERM", &self.pid.to_string()])?;
        tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        Ok(())
    }
}

async fn answers(http: &reqwest::Client, url: &str) -> bool {
    http.get(url).send().await.is_ok()
}

/// An orchestrator process on `config`, once its API answers.
async fn orchestrator(rig: &Rig, config: &str, name: &str) -> Result<(Proc, String)> {
    let port = free_port()?;
    let path = rig.dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        config.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        ),
    )?;
    let proc = Proc::spawn(
        "vessel-orchestrator",
        &["--config", &path.display().to_string()],
        &rig.dir.join(format!("{name}.log")),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let health = format!("{base}/health");
    eventually(
        "the orchestrator to answer",
        Duration::from_secs(120),
        || {
            let (http, health) = (http.clone(), health.clone());
            async move { Ok(answers(&http, &health).await.then_some(())) }
        },
    )
    .await?;
    Ok((proc, base))
}

/// The 50 hosts: GPU hosts in direct mode, the rest tailnet-mode CPU hosts.
fn fleet() -> Vec<HostDecl> {
    let mut decls: Vec<HostDecl> = (0..GPU_HOSTS)
        .map(|i| gpu_host(&format!("g{i:02}"), 1, "3090"))
        .collect();
    decls.extend((0..TAILNET_HOSTS).map(|i| tailscale_host(&format!("c{i:02}"))));
    decls
}

/// The config with only its first `keep` hosts: the same orchestrator with
/// a smaller fleet (the rest marked offline, "not in the inventory", until
/// a config that lists them again is surveyed).
fn with_hosts(config: &str, keep: usize) -> String {
    let tables: Vec<usize> = config
        .match_indices("\n[[hosts]]")
        .map(|(i, _)| i)
        .collect();
    let end = config.find("\n[tailnet]").unwrap_or(config.len());
    match tables.get(keep) {
        Some(&cut) => format!("{}{}", &config[..cut], &config[end.max(cut)..]),
        None => config.to_string(),
    }
}

/// This process's CPU time so far (user + system), from /proc/self/stat.
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Ok(Duration::from_millis((f.iter().sum::<u64>()) * 10))
}

fn subject(i: usize) -> String {
    format!("UBENCH{i:03}")
}

/// Vessels of the bench's users by state.
async fn states(db: &sqlx::PgPool, prefix: &str) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM vessels WHERE name LIKE $1 || '%' GROUP BY state",
    )
    .bind(prefix)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Waits until all `n` vessels named `prefix…` are running or waiting (or
/// failed); returns how long that took and the states.
async fn settled(
    db: &sqlx::PgPool,
    prefix: &str,
    n: i64,
) -> Result<(Duration, BTreeMap<String, i64>)> {
    let start = Instant::now();
    let states = eventually(
        "the creates to settle",
        Duration::from_secs(600),
        || async {
            let s = states(db, prefix).await?;
            let done: i64 = ["running", "pending", "failed"]
                .iter()
                .map(|k| s.get(*k).copied().unwrap_or(0))
                .sum();
            Ok((done == n).then_some(s))
        },
    )
    .await?;
    Ok((start.elapsed(), states))
}

/// Kills every vessel of the bench's users and waits until none is live.
async fn kill_all(db: &sqlx::PgPool, base: &str, rig: &Rig) -> Result<()> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id::text, owner_id FROM vessels WHERE state NOT IN ('buried', 'failed')",
    )
    .fetch_all(db)
    .await?;
    let http = reqwest::Client::new();
    futures::future::join_all(rows.iter().map(|(id, owner)| {
        http.delete(format!("{base}/v1/vessels/{id}"))
            .bearer_auth(rig.researcher(owner))
            .send()
    }))
    .await;
    eventually(
        "every vessel to be buried",
        Duration::from_secs(600),
        || async {
            let live: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM vessels WHERE state NOT IN ('buried', 'failed')",
            )
            .fetch_one(db)
            .await?;
            Ok((live == 0).then_some(()))
        },
    )
    .await
}

/// Idle: the most over three seconds of nothing asked.
async fn idle(pid: u32) -> Result<Look> {
    let sampler = Sampler::start(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(sampler.finish().await)
}

fn max_open_files(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    l.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("/")
                })
        })
        .unwrap_or_else(|| "?".into())
}

/// One survey of every host in-process, cold (new SSH connections) and
/// warm (kept ones): wall time and this process's CPU.
/// Returns (cold, its CPU) and (warm p50, its CPU).
async fn survey_figures(
    rig: &Rig,
    hosts: usize,
) -> Result<((Duration, Duration), (Duration, Duration))> {
    let config = Config::from_toml_str(&rig.config_text)?;
    let pool = Arc::new(HostPool::new(
        &config.hosts,
        config.conductor.ssh_timeout.duration(),
    ));
    let (t, cpu) = (Instant::now(), cpu_time()?);
    vessel_orchestrator::survey::survey(&rig.db, &pool).await;
    let (cold, cold_cpu) = (t.elapsed(), cpu_time()? - cpu);
    let mut warm = Vec::new();
    let cpu = cpu_time()?;
    for _ in 0..5 {
        let t = Instant::now();
        vessel_orchestrator::survey::survey(&rig.db, &pool).await;
        warm.push(t.elapsed());
    }
    let warm_cpu = (cpu_time()? - cpu) / 5;
    warm.sort();
    drop(pool);
    let online: i64 = sqlx::query_scalar("SELECT count(*) FROM hosts WHERE online")
        .fetch_one(&rig.db)
        .await?;
    anyhow::ensure!(online as usize == hosts, "{online} of {hosts} hosts online");
    println!("\nsurvey of {hosts} hosts (all online), in-process:");
    println!(
        "  cold (new SSH connections): {:8.1} ms, this process's CPU {:.0} ms",
        ms(cold),
        ms(cold_cpu)
    );
    println!(
        "  warm (kept connections):    {:8.1} ms p50, {:.1} ms max of 5, CPU {:.0} ms each",
        ms(percentile(&warm, 0.5)),
        ms(warm[warm.len() - 1]),
        ms(warm_cpu)
    );
    Ok(((cold, cold_cpu), (percentile(&warm, 0.5), warm_cpu)))
}

/// The answers of a burst of requests, each `want`, as sorted timings.
fn answered(answers: Vec<Result<(u16, Duration)>>, want: u16, what: &str) -> Result<Vec<Duration>> {
    let mut times = Vec::new();
    for a in answers {
        let (status, took) = a?;
        anyhow::ensure!(status == want, "{what} answered {status}");
        times.push(took);
    }
    times.sort();
    Ok(times)
}

/// Every bench user's key, then CREATES concurrent creates over the API:
/// the orchestrator's peak while they run and how they were answered.
/// Returns the orchestrator's peak while they ran.
async fn create_burst(rig: &Rig, pid: u32, base: &str) -> Result<Look> {
    // Every bench user has a key, as a researcher would.
    let http = reqwest::Client::new();
    let key = std::fs::read_to_string(rig.user_key.with_extension("pub"))?;
    for i in 0..CREATES {
        let resp = http
            .post(format!("{base}/v1/me/keys"))
            .bearer_auth(rig.researcher(&subject(i)))
            .json(&json!({ "public_key": key.trim() }))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("adding a key: {}", resp.text().await?);
        }
    }

    let sampler = Sampler::start(pid);
    let t = Instant::now();
    let answers = futures::future::join_all((0..CREATES).map(|i| {
        let http = http.clone();
        let token = rig.researcher(&subject(i));
        let base = base.to_string();
        async move {
            let t = Instant::now();
            let resp = http
                .post(format!("{base}/v1/vessels"))
                .bearer_auth(token)
                .json(&json!({ "queue": "3090", "gpus": 1, "name": format!("a{i:03}") }))
                .send()
                .await?;
            anyhow::Ok((resp.status().as_u16(), t.elapsed()))
        }
    }))
    .await;
    let burst = t.elapsed();
    let times = answered(answers, 202, "a create")?;
    let (took, by_state) = settled(&rig.db, "a", CREATES as i64).await?;
    let loaded = sampler.finish().await;
    show(&format!("{CREATES} concurrent creates (peak)"), &loaded);
    println!(
        "  the creates answered in {:.0} ms p50, {:.0} ms p99, {:.0} ms all; settled after {:.1} s more: {by_state:?}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(burst),
        took.as_secs_f64()
    );
    Ok(loaded)
}

#[tokio::main]
async fn main() -> Result<()> {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let tailnet = FakeTailnet::start().await?;
    let extra = format!(
        "[tailnet]\nprovider = \"tailscale\"\napi_url = \"{}\"\ntailnet = \"lab.example\"\n\
         user = \"vessels\"\napi_key = \"{API_KEY}\"\ntags = [\"tag:vessel\"]\n",
        tailnet.url()
    );
    let started = Instant::now();
    let mut rig = Rig::start_with(
        &fleet(),
        Options {
            workers: 4,
            ready_timeout: "180s",
            extra_config: extra,
            ..Options::default()
        },
    )
    .await?;
    let hosts = GPU_HOSTS + TAILNET_HOSTS;
    println!(
        "scale bench ({profile} build): {hosts} test hosts up and registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The rig's in-process orchestrator goes: the binary is measured.
    if let Some(app) = rig.app.take() {
        app.stop().await;
    }
    tailnet.watch(&rig.id, &rig.network);

    // 1. One survey, cold and warm.
    let (cold, warm) = survey_figures(&rig, hosts).await?;

    // 2. The orchestrator process: no hosts, then the 50.
    println!("\norchestrator process (workers = 4):");
    let (proc, _) = orchestrator(&rig, &with_hosts(&rig.config_text, 0), "orch-0").await?;
    let bare = idle(proc.pid).await?;
    show("idle, no hosts", &bare);
    proc.stop().await?;
    let half = hosts / 2;
    let (proc, _) = orchestrator(&rig, &with_hosts(&rig.config_text, half), "orch-25").await?;
    let halfway = idle(proc.pid).await?;
    show(&format!("idle, {half} hosts"), &halfway);
    proc.stop().await?;
    let (orch, base) = orchestrator(&rig, &rig.config_text, "orch-50").await?;
    // Its start-up survey has brought every host back online.
    eventually("every host online", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM hosts WHERE online")
            .fetch_one(&rig.db)
            .await?;
        Ok((n as usize == hosts).then_some(()))
    })
    .await?;
    let idle50 = idle(orch.pid).await?;
    show(&format!("idle, {hosts} hosts"), &idle50);
    println!(
        "  open-files limit (soft/hard): {}",
        max_open_files(orch.pid)
    );

    let loaded = create_burst(&rig, orch.pid, &base).await?;
    let http = reqwest::Client::new();
    kill_all(&rig.db, &base, &rig).await?;

    // 3. The bot process.
    let slack = FakeSlack::start().await?;
    let bot_port = free_port()?;
    let bot_config = rig.dir.join("bot.toml");
    std::fs::write(
        &bot_config,
        format!(
            "orchestrator_url = \"{base}\"\n{}\n[slack]\nlisten = \"127.0.0.1:{bot_port}\"\n\
             signing_secret = \"{SIGNING}\"\nbot_token = \"xoxb-test-token\"\napi_url = \"{}\"\n\
             admins = []\nadmin_channel = \"CADMINS\"\nteam_id = \"T0LAB\"\n",
            vessel_testrig::bot_auth_toml(),
            slack.api_url()
        ),
    )?;
    let bot = Proc::spawn(
        "vessel-bot",
        &["--config", &bot_config.display().to_string(), "serve"],
        &rig.dir.join("bot.log"),
    )?;
    let bot_url = format!("http://127.0.0.1:{bot_port}");
    eventually("the bot to listen", Duration::from_secs(60), || async {
        Ok(tokio::net::TcpStream::connect(("127.0.0.1", bot_port))
            .await
            .ok()
            .map(|_| ()))
    })
    .await?;
    println!("\nbot process (HTTP mode, fake Slack):");
    let bot_idle = idle(bot.pid).await?;
    show("idle", &bot_idle);

    let bot_sampler = Sampler::start(bot.pid);
    let orch_sampler = Sampler::start(orch.pid);
    let t = Instant::now();
    let answers = futures::future::join_all((0..CREATES).map(|i| {
        let http = http.clone();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", "deprecated-verification-token")
            .append_pair("team_id", "T0LAB")
            .append_pair("channel_id", "C0GENERAL")
            .append_pair("user_id", &subject(i))
            .append_pair("command", "/vessel")
            .append_pair("text", &format!("create gpu=1 queue=3090 name=b{i:03}"))
            .append_pair("response_url", &slack.response_url())
            .append_pair("trigger_id", "13345224609.738474920.8088930838d88f008e0")
            .finish();
        let url = format!("{bot_url}/slack/commands");
        async move {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs()
                .to_string();
            let signature =
                vessel_bot::slack::signature::sign(SIGNING.as_bytes(), &ts, body.as_bytes());
            let t = Instant::now();
            let resp = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", signature)
                .body(body)
                .send()
                .await?;
            anyhow::Ok((resp.status().as_u16(), t.elapsed()))
        }
    }))
    .await;
    let burst = t.elapsed();
    let times = answered(answers, 200, "a slash command")?;
    let (took, by_state) = settled(&rig.db, "b", CREATES as i64).await?;
    let bot_loaded = bot_sampler.finish().await;
    let orch_loaded = orch_sampler.finish().await;
    show(
        &format!("{CREATES} concurrent /vessel create (peak)"),
        &bot_loaded,
    );
    show("  the orchestrator meanwhile (peak)", &orch_loaded);
    println!(
        "  Slack got its acks in {:.0} ms p50, {:.0} ms p99, {:.0} ms all; settled after {:.1} s more: {by_state:?}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(burst),
        took.as_secs_f64()
    );
    kill_all(&rig.db, &base, &rig).await?;
    bot.stop().await?;
    orch.stop().await?;

    extrapolate(hosts, cold, warm, [&bare, &halfway, &idle50], &loaded);
    Ok(())
}

/// What the figures make at 1,000 hosts, by what grows with what.
fn extrapolate(
    hosts: usize,
    (cold, cold_cpu): (Duration, Duration),
    (warm, warm_cpu): (Duration, Duration),
    [bare, halfway, idle]: [&Look; 3],
    loaded: &Look,
) {
    let per_host_kib = idle.rss_kib.saturating_sub(bare.rss_kib) as f64 / hosts as f64;
    let upper_half_kib =
        idle.rss_kib.saturating_sub(halfway.rss_kib) as f64 / (hosts - hosts / 2) as f64;
    let at = 1000.0;
    let scale = at / hosts as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!("\nat 1,000 hosts (extrapolated, not measured):");
    println!(
        "  sockets: one kept SSH connection per host ({} for {hosts} here): ~1,000, plus \
         Postgres (the pool's fixed max, {} at peak here) and the API's clients: the \
         open-files limit must be above ~1,100 (systemd's default soft limit is 1,024)",
        idle.ssh, loaded.postgres
    );
    // The first hosts also pay for what any work brings (allocator arenas,
    // the runtime's threads woken): the second half's slope is the cost of
    // one more host, the whole slope an upper bound.
    let at_1000 =
        |kib_per_host: f64| mib(idle.rss_kib) + kib_per_host * (at - hosts as f64) / 1024.0;
    println!(
        "  memory: {:.0} KiB per host over the second {} hosts ({:.0} KiB over all {hosts}), \
         so ~{:.0} MiB idle at 1,000 hosts (~{:.0} MiB at the whole slope) if it stays \
         linear; 100 concurrent creates added {:.1} MiB on top, which does not grow with \
         the fleet",
        upper_half_kib,
        hosts - hosts / 2,
        per_host_kib,
        at_1000(upper_half_kib),
        at_1000(per_host_kib),
        mib(loaded.rss_kib.saturating_sub(idle.rss_kib))
    );
    println!(
        "  survey: hosts are probed concurrently (join_all), so its time is the slowest \
         host's answer or this process's CPU spread over the cores, whichever is more. \
         CPU here: {:.1} ms per host cold (the SSH handshake), {:.2} ms warm, so at 1,000 \
         hosts ~{:.1} s cold (start-up) and ~{:.2} s warm of CPU on {cores} cores. The \
         wall times here ({:.1} s cold, {:.2} s warm) include the {hosts} sshds and their \
         probe commands sharing this machine's cores: scaled linearly, {:.0} s and {:.0} s, \
         an upper bound a lab (hosts on their own machines) does not reach",
        ms(cold_cpu) / hosts as f64,
        ms(warm_cpu) / hosts as f64,
        cold_cpu.as_secs_f64() * scale / cores,
        warm_cpu.as_secs_f64() * scale / cores,
        cold.as_secs_f64(),
        warm.as_secs_f64(),
        cold.as_secs_f64() * scale,
        warm.as_secs_f64() * scale
    );
}
