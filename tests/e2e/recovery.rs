//! Invariant 4: a crash, a vanished host or a container removed behind our
//! back ends with every vessel `running`, `failed` or `lost`, and no leaked
//! container or reservation once the reconciler has run.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::rig::{binary, docker, eventually, gpu_host, Options, Rig, VESSEL_IMAGE};

async fn count(rig: &Rig, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(&rig.db).await?)
}

/// When the host was last probed (seconds since the epoch).
async fn probed(rig: &Rig) -> anyhow::Result<f64> {
    Ok(
        sqlx::query_scalar("SELECT extract(epoch FROM probed_at)::float8 FROM hosts")
            .fetch_one(&rig.db)
            .await?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn containers_changed_behind_our_back_are_reconciled() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (_, v) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    let id = v["id"].as_str().unwrap().to_string();
    rig.wait_state(&alice, &id, &["running"], Duration::from_secs(60))
        .await?;

    docker(&["rm", "-f", &format!("vessel-{id}")])?;
    let orphan = format!("vessel-{}-orphan", rig.id);
    docker(&[
        "run",
        "-d",
        "--name",
        &orphan,
        "--network",
        &rig.network,
        "--label",
        &format!("vessel.fleet={}", rig.id),
        "--label",
        &format!("vessel.id={}", uuid::Uuid::new_v4()),
        "--label",
        "vessel.host=gpu-1",
        "--entrypoint",
        "/bin/sleep",
        VESSEL_IMAGE,
        "600",
    ])?;

    let report = rig.app().reconciler.run_once().await?;
    assert_eq!(report.lost, 1, "{report:?}");
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    let lost = rig.show(&alice, &id).await?;
    assert_eq!(lost["state"], "lost");
    assert!(lost["reason"].as_str().unwrap().contains("gone"), "{lost}");
    assert!(
        docker(&["inspect", &orphan]).is_err(),
        "the orphan is still there"
    );
    assert_eq!(count(&rig, "SELECT count(*) FROM reservations").await?, 0);
    assert_eq!(
        count(
            &rig,
            "SELECT count(*) FROM events WHERE kind = 'vessel.lost'"
        )
        .await?,
        1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_host_loses_its_vessels_once_and_gets_them_back() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            probe_schedule: "* * * * * *",
            ..Options::default()
        },
    )
    .await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (_, v) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    let id = v["id"].as_str().unwrap().to_string();
    let running = rig
        .wait_state(&alice, &id, &["running"], Duration::from_secs(60))
        .await?;

    let host = rig.host("gpu-1").container.clone();
    docker(&["stop", "-t", "1", &host])?;
    let lost = rig
        .wait_state(&alice, &id, &["lost"], Duration::from_secs(30))
        .await?;
    assert!(
        lost["reason"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{lost}"
    );
    // Resources stay held while nobody knows whether the container runs.
    assert_eq!(count(&rig, "SELECT count(*) FROM reservations").await?, 1);
    // Several more surveys: still one incident, one message per vessel.
    let probes = count(
        &rig,
        "SELECT count(*) FROM hosts WHERE probed_at IS NOT NULL",
    )
    .await?;
    assert_eq!(probes, 1);
    // Two more surveys pass (each stamps the host): nothing repeats.
    let seen = probed(&rig).await?;
    eventually("two more surveys", Duration::from_secs(30), || async {
        Ok((probed(&rig).await? >= seen + 2.0).then_some(()))
    })
    .await?;
    assert_eq!(
        count(
            &rig,
            "SELECT count(*) FROM events WHERE kind = 'host.unreachable'"
        )
        .await?,
        1
    );
    assert_eq!(
        count(
            &rig,
            "SELECT count(*) FROM events WHERE kind = 'vessel.lost'"
        )
        .await?,
        1
    );

    docker(&["start", &host])?;
    let back = rig
        .wait_state(&alice, &id, &["running"], Duration::from_secs(60))
        .await?;
    assert!(
        back["reason"].as_str().unwrap().contains("answers again"),
        "{back}"
    );
    eventually("the recovery notice", Duration::from_secs(10), || async {
        Ok((count(
            &rig,
            "SELECT count(*) FROM events WHERE kind = 'host.recovered'",
        )
        .await?
            == 1)
            .then_some(()))
    })
    .await?;
    // Still the same vessel, still reachable.
    assert_eq!(rig.ssh(&running["ssh"], "id -un")?, "alice");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orchestrator_killed_mid_provision_leaks_nothing() -> anyhow::Result<()> {
    // The in-test orchestrator serves the API but runs no workers; a second
    // one, a real process, does the provisioning and is SIGKILLed.
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let config = rig.dir.join("worker.toml");
    std::fs::write(
        &config,
        rig.config_text
            .replace("workers = 0", "workers = 2")
            .replace("lease = \"5s\"", "lease = \"2s\""),
    )?;
    let spawn = || {
        tokio::process::Command::new(binary("vessel-orchestrator").unwrap())
            .args(["--config", &config.display().to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
    };
    // The worker has started when its start-up survey stamps the host.
    let before = probed(&rig).await?;
    let mut worker = spawn()?;
    eventually("the worker to start", Duration::from_secs(30), || async {
        Ok((probed(&rig).await? > before).then_some(()))
    })
    .await?;

    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (_, v) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    let id = v["id"].as_str().unwrap().to_string();
    // Kill it once it holds the job, before the vessel runs.
    eventually(
        "the worker to take the job",
        Duration::from_secs(10),
        || async {
            Ok((count(
                &rig,
                "SELECT count(*) FROM jobs WHERE leased_by IS NOT NULL",
            )
            .await?
                == 1)
                .then_some(()))
        },
    )
    .await?;
    worker.start_kill()?;
    worker.wait().await?;
    let state = rig.show(&alice, &id).await?["state"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        state, "provisioning",
        "the kill came too late to test anything"
    );

    let _worker = spawn()?;
    let end = rig
        .wait_state(&alice, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    let containers = rig.vessel_containers()?;
    let reservations = count(&rig, "SELECT count(*) FROM reservations").await?;
    match end["state"].as_str() {
        Some("running") => {
            assert_eq!(containers, vec![format!("vessel-{id}")]);
            assert_eq!(reservations, 1);
            assert_eq!(rig.ssh(&end["ssh"], "id -un")?, "alice");
        }
        _ => {
            assert!(containers.is_empty(), "{containers:?}");
            assert_eq!(reservations, 0);
        }
    }
    Ok(())
}
