//! Hibernation (issue 21) against real Docker and real SSH: a hibernated
//! vessel gives its GPU back at once and keeps every file (not only the
//! home), its address and its host key; a wake goes through the line to the
//! host its disk is on and is ready when the *same* known_hosts line logs
//! in under `StrictHostKeyChecking yes`.

use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use crate::rig::{docker, gpu_host, Rig};

const DEADLINE: Duration = Duration::from_secs(60);

/// Files a researcher would lose to a burial: installed as root into `/opt`
/// and `/usr/local` (as `apt`/`pip` would), and data in `/tmp`.
fn leave_files(rig: &Rig, vessel: &Value) -> anyhow::Result<()> {
    let container = format!("vessel-{}", vessel["id"].as_str().context("id")?);
    docker(&[
        "exec",
        &container,
        "sh",
        "-c",
        "mkdir -p /opt/tool && echo opt-kept > /opt/tool/v && echo usr-kept > /usr/local/bin/tool",
    ])?;
    rig.ssh(&vessel["ssh"], "echo tmp-kept > /tmp/x")?;
    Ok(())
}

fn files_are_there(rig: &Rig, access: &Value) -> anyhow::Result<()> {
    let out = rig.ssh(access, "cat /opt/tool/v /usr/local/bin/tool /tmp/x")?;
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["opt-kept", "usr-kept", "tmp-kept"]
    );
    Ok(())
}

async fn act(rig: &Rig, token: &str, id: &str, verb: &str) -> anyhow::Result<Value> {
    let body = (verb == "wake").then(|| json!({}));
    let (status, v) = rig
        .call(
            Method::POST,
            &format!("/v1/vessels/{id}/{verb}"),
            token,
            body,
        )
        .await?;
    anyhow::ensure!(status == 200, "{verb}: {status} {v}");
    Ok(v)
}

/// A researcher with the rig's key registered: their token.
async fn researcher(rig: &Rig, name: &str) -> anyhow::Result<String> {
    let token = rig.researcher(name);
    rig.add_key(&token).await?;
    Ok(token)
}

fn running(container: &str) -> anyhow::Result<bool> {
    Ok(docker(&["inspect", "--format", "{{.State.Running}}", container])?.trim() == "true")
}

/// One GPU: asleep, its GPU is someone else's at once; the wake waits in
/// line for that host with the reason, and once the GPU frees it starts in
/// place with every file, its address and its host key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_outside_home_survive_hibernation_behind_the_same_host_key() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 1, "3090")]).await?;
    let (alice, bob) = (
        researcher(&rig, "alice").await?,
        researcher(&rig, "bob").await?,
    );
    let vessel = rig
        .launch(&alice, json!({ "queue": "3090", "name": "lab" }))
        .await?;
    let id = vessel["id"].as_str().context("id")?.to_string();
    let container = format!("vessel-{id}");
    let access = vessel["ssh"].clone();
    leave_files(&rig, &vessel)?;

    act(&rig, &alice, &id, "hibernate").await?;
    let asleep = rig
        .wait_state(&alice, &id, &["hibernated"], DEADLINE)
        .await?;
    assert!(asleep["hibernated_at"].is_string(), "{asleep}");
    assert!(!running(&container)?, "its processes still run");
    // Its GPU is free at once: another person's request runs on it.
    let other = rig.launch(&bob, json!({ "queue": "3090" })).await?;
    assert_eq!(other["gpu_uuids"], vessel["gpu_uuids"]);
    assert_ne!(
        other["address"], vessel["address"],
        "its address was given away"
    );

    // The wake waits for its own host, saying so.
    let waking = act(&rig, &alice, &id, "wake").await?;
    assert_eq!(waking["state"], "pending", "{waking}");
    let reason = waking["line"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("on gpu-1, where its disk is"), "{reason}");

    // Bob is done: the wake is placed and starts as it was.
    rig.kill(&bob, other["id"].as_str().context("id")?).await?;
    let awake = rig.wait_state(&alice, &id, &["running"], DEADLINE).await?;
    assert_eq!(awake["address"], vessel["address"]);
    assert!(awake["hibernated_at"].is_null(), "{awake}");
    files_are_there(&rig, &access)?;
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE target = $1 AND action IN ('vessel.hibernate', 'vessel.wake') ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&rig.db)
    .await?;
    assert_eq!(audited, ["vessel.hibernate", "vessel.wake"]);
    Ok(())
}

/// Two GPUs: while it sleeps its GPU is taken, so the wake gets the other
/// one; Docker cannot change a stopped container's devices, so the vessel
/// is recreated from a commit of its disk, and still has every file and
/// its host key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_on_other_gpus_is_recreated_from_its_disk() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let (alice, bob) = (
        researcher(&rig, "alice").await?,
        researcher(&rig, "bob").await?,
    );
    let vessel = rig
        .launch(&alice, json!({ "queue": "3090", "name": "lab" }))
        .await?;
    let id = vessel["id"].as_str().context("id")?.to_string();
    let access = vessel["ssh"].clone();
    leave_files(&rig, &vessel)?;

    act(&rig, &alice, &id, "hibernate").await?;
    rig.wait_state(&alice, &id, &["hibernated"], DEADLINE)
        .await?;
    // Hibernating again, or waking twice, answers the vessel as it is.
    act(&rig, &alice, &id, "hibernate").await?;
    let other = rig.launch(&bob, json!({ "queue": "3090" })).await?;
    assert_eq!(other["gpu_uuids"], vessel["gpu_uuids"], "bob took its GPU");

    act(&rig, &alice, &id, "wake").await?;
    act(&rig, &alice, &id, "wake").await?;
    let awake = rig.wait_state(&alice, &id, &["running"], DEADLINE).await?;
    assert_ne!(awake["gpu_uuids"], vessel["gpu_uuids"]);
    assert_eq!(awake["address"], vessel["address"]);
    files_are_there(&rig, &access)?;
    // One container for the vessel, by its own name, on its new GPU.
    let env = docker(&[
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        &format!("vessel-{id}"),
    ])?;
    let gpu = awake["gpu_uuids"][0].as_str().context("gpu")?;
    assert!(
        env.contains(&format!("NVIDIA_VISIBLE_DEVICES={gpu}")),
        "{env}"
    );
    let all = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=vessel.id={id}"),
        "--format",
        "{{.Names}}",
    ])?;
    assert_eq!(all.trim(), format!("vessel-{id}"), "{all}");

    // Killing it removes its disk.
    rig.kill(&alice, &id).await?;
    let left = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=vessel.id={id}"),
        "--format",
        "{{.Names}}",
    ])?;
    assert!(left.trim().is_empty(), "{left}");
    Ok(())
}

/// The reconciler knows a sleeper's stopped container is its disk, not an
/// orphan; a sleeper whose container vanished has nothing to wake and is
/// `lost`, saying so, its address freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleepers_disk_is_not_an_orphan_and_one_that_vanished_is_lost() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 1, "3090")]).await?;
    let alice = researcher(&rig, "alice").await?;
    let vessel = rig.launch(&alice, json!({ "queue": "3090" })).await?;
    let id = vessel["id"].as_str().context("id")?.to_string();
    let container = format!("vessel-{id}");
    act(&rig, &alice, &id, "hibernate").await?;
    rig.wait_state(&alice, &id, &["hibernated"], DEADLINE)
        .await?;

    let report = rig.app().reconciler.run_once().await?;
    assert!(!running(&container)?, "{report:?}");
    assert_eq!(
        rig.show(&alice, &id).await?["state"],
        "hibernated",
        "{report:?}"
    );

    docker(&["rm", "-f", &container])?;
    rig.app().reconciler.run_once().await?;
    let lost = rig.show(&alice, &id).await?;
    assert_eq!(lost["state"], "lost", "{lost}");
    assert!(
        lost["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("is gone"),
        "{lost}"
    );
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM address_holds")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(holds, 0, "a lost sleeper still holds its address");
    Ok(())
}

/// Sleepers do not pile up: beyond `max_hibernated` per person and queue
/// the oldest is buried at the next sweep; the rest are warned a day before
/// `bury_hibernated_after` and then buried, their containers removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleepers_are_buried_after_a_warning_and_beyond_the_persons_limit() -> anyhow::Result<()> {
    use vessel_orchestrator::clock::ManualClock;
    let start = chrono::Utc::now();
    let clock = ManualClock::at(start);
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        crate::rig::Options {
            clock: Some(clock.clone()),
            queue_3090: "max_hibernated = 1\nbury_hibernated_after = \"14d\"".into(),
            ..Default::default()
        },
    )
    .await?;
    let alice = researcher(&rig, "alice").await?;
    let old = rig
        .launch(&alice, json!({ "queue": "3090", "name": "old" }))
        .await?;
    let new = rig
        .launch(&alice, json!({ "queue": "3090", "name": "new" }))
        .await?;
    let (old, new) = (
        old["id"].as_str().context("id")?,
        new["id"].as_str().context("id")?,
    );
    for id in [old, new] {
        act(&rig, &alice, id, "hibernate").await?;
        rig.wait_state(&alice, id, &["hibernated"], DEADLINE)
            .await?;
    }
    let sweep = |at: chrono::DateTime<chrono::Utc>| {
        clock.set(at);
        async { anyhow::Ok(rig.app().undertaker.sweep().await?) }
    };
    let report = sweep(start).await?;
    assert_eq!(report.sleepers_buried, 1, "{report:?}");
    let gone = rig.wait_state(&alice, old, &["buried"], DEADLINE).await?;
    assert!(
        gone["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("limit of 1"),
        "{gone}"
    );
    assert_eq!(rig.show(&alice, new).await?["state"], "hibernated");

    let report = sweep(start + chrono::Duration::days(13) + chrono::Duration::hours(1)).await?;
    assert_eq!(
        (report.sleepers_warned, report.sleepers_buried),
        (1, 0),
        "{report:?}"
    );
    let warned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE kind = 'vessel.burial_warning' AND vessel_id::text = $1",
    )
    .bind(new)
    .fetch_one(&rig.db)
    .await?;
    assert_eq!(warned, 1);
    let report = sweep(start + chrono::Duration::days(14) + chrono::Duration::hours(2)).await?;
    assert_eq!(report.sleepers_buried, 1, "{report:?}");
    let gone = rig.wait_state(&alice, new, &["buried"], DEADLINE).await?;
    assert!(
        gone["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("14 days"),
        "{gone}"
    );
    let left = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=vessel.id={new}"),
        "--format",
        "{{.Names}}",
    ])?;
    assert!(left.trim().is_empty(), "its disk was kept: {left}");
    Ok(())
}

/// A vessel recreated from a commit of its disk takes that image with it
/// when it is killed: sleepers do not leave images behind on their host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_recreated_vessel_removes_its_disk_image() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let (alice, bob) = (
        researcher(&rig, "alice").await?,
        researcher(&rig, "bob").await?,
    );
    let vessel = rig.launch(&alice, json!({ "queue": "3090" })).await?;
    let id = vessel["id"].as_str().context("id")?.to_string();
    act(&rig, &alice, &id, "hibernate").await?;
    rig.wait_state(&alice, &id, &["hibernated"], DEADLINE)
        .await?;
    rig.launch(&bob, json!({ "queue": "3090" })).await?;
    act(&rig, &alice, &id, "wake").await?;
    rig.wait_state(&alice, &id, &["running"], DEADLINE).await?;
    let image = format!("vessel-disk/{id}:latest");
    assert!(
        docker(&["image", "inspect", &image]).is_ok(),
        "no commit was made"
    );
    rig.kill(&alice, &id).await?;
    assert!(
        docker(&["image", "inspect", &image]).is_err(),
        "{image} was left behind"
    );
    Ok(())
}

/// The orchestrator that does the work (a real process) is SIGKILLed at a
/// random moment of each of five hibernates and wakes and started again:
/// every step is idempotent, so each settles in one state with nothing held
/// twice — a sleeper holds no reservation and its address, a running vessel
/// the reverse — and the vessel still logs in behind its first host key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_hibernate_and_wake_leaks_nothing() -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    use std::process::Stdio;
    let seed: u64 = match std::env::var("VESSEL_TEST_SEED") {
        Ok(s) => s.parse()?,
        Err(_) => rand::random(),
    };
    println!("hibernation: seed {seed} (VESSEL_TEST_SEED={seed} replays the kills)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // The in-test orchestrator serves the API and runs no workers; the
    // worker process does every conductor step and is the one killed.
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        crate::rig::Options {
            workers: 0,
            ..Default::default()
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
        tokio::process::Command::new(crate::rig::binary("vessel-orchestrator").unwrap())
            .args(["--config", &config.display().to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
    };
    let mut worker = spawn()?;
    let alice = researcher(&rig, "alice").await?;
    let vessel = rig.launch(&alice, json!({ "queue": "3090" })).await?;
    let id = vessel["id"].as_str().context("id")?.to_string();
    let container = format!("vessel-{id}");
    let access = vessel["ssh"].clone();
    let count = |sql: &'static str| {
        let db = rig.db.clone();
        async move { anyhow::Ok(sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await?) }
    };
    for round in 0..5 {
        let verb = if round % 2 == 0 { "hibernate" } else { "wake" };
        act(&rig, &alice, &id, verb).await?;
        // A moment within the step (a stop takes up to 2 s, a wake about
        // one): the kill falls before, inside or after it.
        let at = Duration::from_millis(rng.gen_range(0..1500));
        tokio::time::sleep(at).await;
        worker.start_kill()?;
        worker.wait().await?;
        worker = spawn()?;
        let want = if verb == "hibernate" {
            "hibernated"
        } else {
            "running"
        };
        rig.wait_state(&alice, &id, &[want], DEADLINE)
            .await
            .with_context(|| format!("round {round} ({verb}, killed after {at:?}, seed {seed})"))?;
        let reservations = count("SELECT count(*) FROM reservations").await?;
        let holds = count("SELECT count(*) FROM address_holds").await?;
        let claims = count("SELECT count(*) FROM gpu_claims").await?;
        if want == "hibernated" {
            assert_eq!(
                (reservations, claims, holds),
                (0, 0, 1),
                "round {round}, seed {seed}"
            );
            assert!(
                !running(&container)?,
                "round {round}: it runs without a reservation"
            );
        } else {
            assert_eq!(
                (reservations, claims, holds),
                (1, 1, 0),
                "round {round}, seed {seed}"
            );
            assert!(running(&container)?, "round {round}");
            rig.ssh(&access, "true")?;
        }
        let all = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=vessel.id={id}"),
            "--format",
            "{{.Names}}",
        ])?;
        assert_eq!(all.trim(), container, "round {round}, seed {seed}");
    }
    Ok(())
}

/// `wake --anywhere` when its own host is full: its disk is committed on the
/// old host, streamed to the other, started there behind the same host key
/// (a new address), and the old container is gone once it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_anywhere_on_a_full_host_moves_the_disk() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 1, "3090"), gpu_host("gpu-2", 1, "3090")]).await?;
    let (alice, bob) = (
        researcher(&rig, "alice").await?,
        researcher(&rig, "bob").await?,
    );
    let vessel = rig
        .launch(&alice, json!({ "queue": "3090", "name": "lab" }))
        .await?;
    let id = vessel["id"].as_str().context("id")?.to_string();
    let home = vessel["host"].clone();
    leave_files(&rig, &vessel)?;
    act(&rig, &alice, &id, "hibernate").await?;
    rig.wait_state(&alice, &id, &["hibernated"], DEADLINE)
        .await?;
    let taker = rig.launch(&bob, json!({ "queue": "3090" })).await?;
    assert_eq!(taker["host"], home, "bob was placed on the other host");

    let (status, v) = rig
        .call(
            Method::POST,
            &format!("/v1/vessels/{id}/wake"),
            &alice,
            Some(json!({ "anywhere": true })),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    let moved = rig.wait_state(&alice, &id, &["running"], DEADLINE).await?;
    assert_ne!(moved["host"], home, "{moved}");
    assert_ne!(moved["address"], vessel["address"]);
    let key = |v: &Value| {
        v["ssh"]["known_hosts"]
            .as_str()
            .and_then(|l| l.split_once(' '))
            .map(|(_, key)| key.to_string())
    };
    assert_eq!(key(&moved), key(&vessel), "its host key changed");
    files_are_there(&rig, &moved["ssh"])?;
    let all = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=vessel.id={id}"),
        "--format",
        "{{.Names}} {{.Label \"vessel.host\"}}",
    ])?;
    assert_eq!(
        all.trim(),
        format!("vessel-{id} {}", moved["host"].as_str().unwrap_or_default()),
        "{all}"
    );
    Ok(())
}
