//! Hibernation figures (`cargo bench --bench hibernate`), issue 21:
//!
//! 1. hibernate → its GPU placeable: the time from the request to the
//!    placement of another person's request that waited for that GPU;
//! 2. wake on its own host with room → SSH login works with the known_hosts
//!    line from before, as a ratio to a fresh create → login, interleaved in
//!    the same run;
//! 3. a wake on other GPUs (recreated from a commit of its disk) with 200 MB
//!    written outside the home → login.
//!
//! `wake --anywhere` is not built yet, so it has no figure.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vessel_testrig::figures::{ms, percentile};
use vessel_testrig::{docker, gpu_host, run, Rig};

const RUNS: usize = 12;

async fn post(rig: &Rig, token: &str, id: &str, verb: &str) -> Result<Value> {
    let body = (verb == "wake").then(|| json!({}));
    let (status, v) = rig
        .call(
            reqwest::Method::POST,
            &format!("/v1/vessels/{id}/{verb}"),
            token,
            body,
        )
        .await?;
    if status != 200 {
        bail!("{verb}: {status} {v}");
    }
    Ok(v)
}

/// Polls until the vessel's state is one of `states`.
async fn until_state(rig: &Rig, token: &str, id: &str, states: &[&str]) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = rig.show(token, id).await?;
        if states.contains(&v["state"].as_str().unwrap_or("")) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{id} never reached {states:?}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls a login with the vessel's pinned access until it works.
async fn until_login(rig: &Rig, start: Instant, access: &Value) -> Result<Duration> {
    let args = rig.ssh_args(access, "true", 2)?;
    let deadline = start + Duration::from_secs(60);
    loop {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        if run("ssh", &refs).is_ok() {
            return Ok(start.elapsed());
        }
        if Instant::now() > deadline {
            bail!("no login within 60s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh create → login, then killed.
async fn fresh(rig: &Rig, token: &str) -> Result<Duration> {
    let start = Instant::now();
    let (status, v) = rig.create(token, json!({ "queue": "3090" })).await?;
    if status != 202 {
        bail!("create: {status} {v}");
    }
    let id = v["id"].as_str().context("id")?.to_string();
    let v = until_state(rig, token, &id, &["running"]).await?;
    let took = until_login(rig, start, &v["ssh"]).await?;
    rig.kill(token, &id).await?;
    Ok(took)
}

fn report(what: &str, sorted: &mut [Duration]) {
    sorted.sort();
    println!(
        "  {what}: p50 {:.0} ms, p99 {:.0} ms (max of {} runs), min {:.0} ms",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.99)),
        sorted.len(),
        ms(sorted[0])
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    // One host of two GPUs: alice's sleeper on one; bob fills the other and
    // waits for hers; carol's fresh creates are the baseline.
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let (alice, bob, carol) = (
        rig.researcher("alice"),
        rig.researcher("bob"),
        rig.researcher("carol"),
    );
    for t in [&alice, &bob, &carol] {
        rig.add_key(t).await?;
    }
    let sleeper = rig
        .launch(&alice, json!({ "queue": "3090", "name": "sleeper" }))
        .await?;
    let id = sleeper["id"].as_str().context("id")?.to_string();
    let access = sleeper["ssh"].clone();
    let (mut freed, mut woke, mut created) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        let filler = rig.launch(&bob, json!({ "queue": "3090" })).await?;
        let (status, wait) = rig.create(&bob, json!({ "queue": "3090" })).await?;
        if status != 202 || wait["state"] != "pending" {
            bail!("bob should wait: {status} {wait}");
        }
        let waiting = wait["id"].as_str().context("id")?.to_string();
        let start = Instant::now();
        post(&rig, &alice, &id, "hibernate").await?;
        until_state(&rig, &bob, &waiting, &["provisioning", "running"]).await?;
        freed.push(start.elapsed());
        until_state(&rig, &alice, &id, &["hibernated"]).await?;
        rig.kill(&bob, &waiting).await?;
        rig.kill(&bob, filler["id"].as_str().context("id")?).await?;
        // Both GPUs free: a wake in place, and a fresh create, each first
        // in turn so load that comes and goes falls on both alike.
        if i % 2 == 1 {
            created.push(fresh(&rig, &carol).await?);
        }
        let start = Instant::now();
        post(&rig, &alice, &id, "wake").await?;
        until_state(&rig, &alice, &id, &["running"]).await?;
        woke.push(until_login(&rig, start, &access).await?);
        if i % 2 == 0 {
            created.push(fresh(&rig, &carol).await?);
        }
    }
    println!("hibernation on one host of 2 GPUs, {RUNS} runs:");
    report(
        "hibernate → its GPU placed for a waiting request",
        &mut freed,
    );
    report("wake in place → SSH login (same known_hosts)", &mut woke);
    report("fresh create → SSH login (same run)", &mut created);
    let ratio = ms(percentile(&woke, 0.5)) / ms(percentile(&created, 0.5));
    println!("  wake / create at p50: {ratio:.2}×");

    // A wake on other GPUs: 200 MB outside the home, committed and recreated.
    let container = format!("vessel-{id}");
    docker(&[
        "exec",
        &container,
        "sh",
        "-c",
        "head -c 200000000 /dev/urandom > /opt/blob",
    ])?;
    post(&rig, &alice, &id, "hibernate").await?;
    until_state(&rig, &alice, &id, &["hibernated"]).await?;
    let taker = rig.launch(&bob, json!({ "queue": "3090" })).await?;
    let start = Instant::now();
    post(&rig, &alice, &id, "wake").await?;
    until_state(&rig, &alice, &id, &["running"]).await?;
    let recreated = until_login(&rig, start, &access).await?;
    println!(
        "  wake on other GPUs (200 MB written, recreated from a commit) → SSH login: {:.0} ms",
        ms(recreated)
    );
    rig.kill(&bob, taker["id"].as_str().context("id")?).await?;
    Ok(())
}
