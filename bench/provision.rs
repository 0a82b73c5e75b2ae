//! Provisioning and placement figures (`cargo bench --bench provision`).
//!
//! 1. create → SSH login works, for 20 vessels one after another, each
//!    next to a bare `docker run` + sshd + login on the same engine
//!    (interleaved), and the ratio; then where the time goes, step by
//!    step, from the conductor's spans.
//!
//! The placement statement's figures are in `cargo bench --bench line`.

use std::time::{Duration, Instant};

mod steps;

use anyhow::{bail, Result};
use serde_json::json;
use steps::{Breakdown, Recorder};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use vessel_testrig::figures::{ms, percentile};
use vessel_testrig::{address_on, docker, gpu_host, run, Rig, VESSEL_IMAGE};

const RUNS: usize = 20;

// The baseline does what the vessel init does, by hand: a user with a key,
// one ed25519 host key, sshd. No upload, no reservation, no SSH hop.

/// Polls an SSH login until it works; how long that took from `start`.
async fn until_login(start: Instant, args: &[String]) -> Result<Duration> {
    let deadline = start + Duration::from_secs(60);
    loop {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        if run("ssh", &refs).is_ok() {
            return Ok(start.elapsed());
        }
        if Instant::now() > deadline {
            bail!("no login within 60s: ssh {}", args.join(" "));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The bare run's container script, with the researcher's key.
fn bare_script(rig: &Rig) -> Result<String> {
    let key = std::fs::read_to_string(rig.user_key.with_extension("pub"))?;
    Ok(format!(
        "useradd -M -u 20000 -s /bin/sh alice && usermod -p '*' alice && \
         mkdir -p /home/alice/.ssh && echo '{}' > /home/alice/.ssh/authorized_keys && \
         chown -R alice /home/alice && \
         ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && mkdir -p /run/sshd && \
         exec /usr/sbin/sshd -D -e -o HostKey=/etc/ssh/ssh_host_ed25519_key",
        key.trim()
    ))
}

async fn bare_once(
    rig: &Rig,
    script: &str,
    i: usize,
    breakdown: &mut Breakdown,
) -> Result<Duration> {
    let name = format!("vessel-{}-bare-{i}", rig.id);
    let start = Instant::now();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &rig.network,
        "--label",
        &format!("vessel.test={}", rig.id),
        "--entrypoint",
        "/bin/sh",
        VESSEL_IMAGE,
        "-c",
        script,
    ])?;
    let ran = Instant::now();
    let address = address_on(&rig.network, &name)?;
    let args: Vec<String> = [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=2",
        "-o",
        "LogLevel=ERROR",
        "-i",
        &rig.user_key.display().to_string(),
        &format!("alice@{address}"),
        "true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let login = until_login(start, &args).await?;
    breakdown.add(
        start,
        &[],
        &[
            ("docker run -d (CLI)", start, ran),
            ("ssh login polled (bench)", ran, start + login),
        ],
    );
    docker(&["rm", "-f", &name])?;
    Ok(login)
}

async fn vessel_once(
    rig: &Rig,
    alice: &str,
    recorder: &Recorder,
    breakdown: &mut Breakdown,
) -> Result<Duration> {
    let start = Instant::now();
    let (status, v) = rig
        .create(
            alice,
            json!({ "queue": "3090", "gpus": 1, "cpus": 1, "memory": "1G" }),
        )
        .await?;
    if status != 202 {
        bail!("create: {status} {v}");
    }
    let created = Instant::now();
    let id = v["id"].as_str().unwrap().to_string();
    let vessel = loop {
        let v = rig.show(alice, &id).await?;
        match v["state"].as_str() {
            Some("running") => break v,
            Some("failed") => bail!("failed: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let seen = Instant::now();
    let args = rig.ssh_args(&vessel["ssh"], "true", 2)?;
    let login = until_login(start, &args).await?;
    breakdown.add(
        start,
        &recorder.take(&id),
        &[
            ("api create (HTTP, bench)", start, created),
            ("running seen (bench polls 5 ms)", start, seen),
            ("ssh login (bench)", seen, start + login),
        ],
    );
    // Waits until buried, as the bare runs remove their container
    // before the next: the teardown's spans are dropped with it.
    rig.kill(alice, &id).await?;
    recorder.take(&id);
    Ok(login)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    // `cargo bench` passes --bench; nothing else to parse.
    // Logs at warn unless RUST_LOG says otherwise; the conductor's spans,
    // all of them, to the recorder (the rig's own logger then stands aside).
    let recorder = Recorder::default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(filter))
        .with(
            recorder.layer().with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("vessel_orchestrator", tracing::Level::DEBUG),
            ),
        )
        .init();
    let rig = Rig::start(&[gpu_host("gpu-1", 4, "3090")]).await?;

    let script = bare_script(&rig)?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let mut bare_steps = Breakdown::default();
    let mut vessel_steps = Breakdown::default();
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    // Interleaved, each going first in turn: on a shared machine, load
    // that comes and goes then falls on both alike, and the ratio compares
    // like with like (run one after the other, it swung by ±15%).
    for i in 0..RUNS {
        if i % 2 == 0 {
            bare.push(bare_once(&rig, &script, i, &mut bare_steps).await?);
            ours.push(vessel_once(&rig, &alice, &recorder, &mut vessel_steps).await?);
        } else {
            ours.push(vessel_once(&rig, &alice, &recorder, &mut vessel_steps).await?);
            bare.push(bare_once(&rig, &script, i, &mut bare_steps).await?);
        }
    }
    bare.sort();
    ours.sort();
    let (b50, b95) = (percentile(&bare, 0.5), percentile(&bare, 0.95));
    let (v50, v95) = (percentile(&ours, 0.5), percentile(&ours, 0.95));
    println!("provisioning, {RUNS} runs each, create → SSH login works:");
    println!(
        "  bare docker run + sshd   p50 {:7.1} ms   p95 {:7.1} ms",
        ms(b50),
        ms(b95)
    );
    println!(
        "  vessel create            p50 {:7.1} ms   p95 {:7.1} ms",
        ms(v50),
        ms(v95)
    );
    println!(
        "  ratio vessel / bare      p50 {:7.2}x     p95 {:7.2}x",
        ms(v50) / ms(b50),
        ms(v95) / ms(b95)
    );
    println!("where the time goes, bare (ms after `docker run` was called):");
    print!("{}", bare_steps.render());
    println!(
        "where the time goes, vessel (ms after the create was sent; indented: Docker API calls):"
    );
    print!("{}", vessel_steps.render());

    Ok(())
}
