//! A SIGTERM in the middle of a provision: the orchestrator stops at once,
//! hands its job back instead of leaving a half-made container without an
//! owner, and after a restart the vessel ends `running` or `failed` with no
//! container or reservation left behind.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::rig::{binary, docker, eventually, gpu_host, Options, Rig, VESSEL_IMAGE};

/// The vessel image with an sshd that waits a few seconds before it
/// starts: a provision then spends those seconds with its container made
/// and running but not ready, which is when the test stops the worker.
const SLOW_IMAGE: &str = "vessel/slow-sshd:e2e";
const SSHD_DELAY_SECS: u32 = 4;

/// Builds `SLOW_IMAGE` from the local vessel image (no registry involved;
/// Docker's cache makes a rebuild instant). Left in place for the next run.
fn build_slow_image(dir: &Path) -> anyhow::Result<()> {
    let context = dir.join("slow-image");
    std::fs::create_dir_all(&context)?;
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {VESSEL_IMAGE}\n\
             RUN mv /usr/sbin/sshd /usr/sbin/sshd.real \
              && printf '#!/bin/sh\\nsleep {SSHD_DELAY_SECS}\\nexec /usr/sbin/sshd.real \"$@\"\\n' > /usr/sbin/sshd \
              && chmod 755 /usr/sbin/sshd\n"
        ),
    )?;
    docker(&[
        "build",
        "-q",
        "-t",
        SLOW_IMAGE,
        &context.display().to_string(),
    ])?;
    Ok(())
}

async fn count(rig: &Rig, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(&rig.db).await?)
}

/// When the hosts were last probed: a worker has started once its
/// start-up survey moves this.
async fn probed(rig: &Rig) -> anyhow::Result<f64> {
    Ok(
        sqlx::query_scalar("SELECT extract(epoch FROM max(probed_at))::float8 FROM hosts")
            .fetch_one(&rig.db)
            .await?,
    )
}

/// An orchestrator process with workers, its log in `log`.
struct Worker {
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    async fn start(rig: &Rig, config: &Path, log: std::path::PathBuf) -> anyhow::Result<Worker> {
        let before = probed(rig).await?;
        let child = Command::new(binary("vessel-orchestrator")?)
            .args(["--config", &config.display().to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        eventually("the worker to start", Duration::from_secs(30), || async {
            Ok((probed(rig).await? > before).then_some(()))
        })
        .await?;
        Ok(Worker { child, log })
    }

    /// Sends SIGTERM; returns how long the process took to exit.
    async fn terminate(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let pid = self.child.id().context("the worker has already exited")?;
        let sent = Instant::now();
        crate::rig::run("kill", &["-TERM", &pid.to_string()])?;
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "the worker did not exit within {within:?} of SIGTERM; its log: {}",
                    self.log.display()
                )
            })??;
        anyhow::ensure!(
            status.success(),
            "the worker exited with {status}; its log: {}",
            self.log.display()
        );
        Ok(sent.elapsed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigterm_mid_provision_hands_the_job_back_and_leaks_nothing() -> anyhow::Result<()> {
    // The in-test orchestrator serves the API but runs no workers; the
    // worker is a real process that gets the signal.
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    build_slow_image(&rig.dir)?;
    // A lease far longer than the test's patience: a job the stopped worker
    // kept leased would not be taken again in time. Only a handed-back job
    // is.
    let config = rig.dir.join("worker.toml");
    std::fs::write(
        &config,
        rig.config_text
            .replace("workers = 0", "workers = 2")
            .replace("lease = \"5s\"", "lease = \"120s\""),
    )?;
    let mut worker = Worker::start(&rig, &config, rig.dir.join("worker-1.log")).await?;

    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig
        .create(&alice, json!({ "queue": "3090", "image": SLOW_IMAGE }))
        .await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let container = format!("vessel-{id}");
    // Stop it while it holds a made, started container that is not ready.
    eventually(
        "the container to be made",
        Duration::from_secs(30),
        || async { Ok(rig.vessel_containers()?.contains(&container).then_some(())) },
    )
    .await?;
    let took = worker.terminate(Duration::from_secs(10)).await?;
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert_eq!(
        rig.show(&alice, &id).await?["state"],
        "provisioning",
        "the signal came too late to test anything"
    );
    // The job is handed back, due now, the interrupted attempt not counted:
    // the half-made container still has an owner.
    assert_eq!(
        count(
            &rig,
            "SELECT count(*) FROM jobs WHERE leased_by IS NULL AND lease_until IS NULL
               AND run_after <= now() AND attempts = 0"
        )
        .await?,
        1,
        "the job was not handed back; the worker's log: {}",
        worker.log.display()
    );

    let mut worker = Worker::start(&rig, &config, rig.dir.join("worker-2.log")).await?;
    let end = rig
        .wait_state(&alice, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    let containers = rig.vessel_containers()?;
    let reservations = count(&rig, "SELECT count(*) FROM reservations").await?;
    match end["state"].as_str() {
        Some("running") => {
            assert_eq!(containers, vec![container]);
            assert_eq!(reservations, 1);
            assert_eq!(rig.ssh(&end["ssh"], "id -un")?, "alice");
        }
        _ => {
            assert!(containers.is_empty(), "{containers:?} {end}");
            assert_eq!(reservations, 0, "{end}");
        }
    }
    eventually("the job to be done", Duration::from_secs(10), || async {
        Ok((count(&rig, "SELECT count(*) FROM jobs").await? == 0).then_some(()))
    })
    .await?;

    // With nothing in hand, a stop is as quick.
    let took = worker.terminate(Duration::from_secs(10)).await?;
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    Ok(())
}

/// A log written to a file (or a pipe, or the journal) carries no ANSI
/// colour codes: it is read with `grep` and `less`, not on a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_to_a_file_has_no_colour_codes() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let config = rig.dir.join("logged.toml");
    std::fs::write(&config, &rig.config_text)?;
    let log = rig.dir.join("logged.log");
    let mut worker = Worker {
        child: Command::new(binary("vessel-orchestrator")?)
            .args(["--config", &config.display().to_string()])
            .env("RUST_LOG", "info")
            .env_remove("VESSEL_LOG_FORMAT")
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(rig.dir.join("logged.err"))?)
            .kill_on_drop(true)
            .spawn()?,
        log: log.clone(),
    };
    eventually(
        "the orchestrator to start",
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(&log)?;
            Ok(text.contains("orchestrator listening").then_some(()))
        },
    )
    .await?;
    worker.terminate(Duration::from_secs(20)).await?;
    let text = std::fs::read_to_string(&log)?;
    assert!(text.contains("host probed"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "the log holds colour codes:\n{}",
        text.escape_debug()
    );
    Ok(())
}
