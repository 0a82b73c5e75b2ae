//! The waiting line end to end: a request that does not fit waits with its
//! place and reason, and is placed, in order, when room frees up; limits,
//! holds against starvation, cancel, expiry, an admin's move to the front,
//! and two replicas racing placement passes.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::rig::{eventually, gpu_host, Options, Rig};

const ADMIN: &str = "root-admin";

fn one_gpu() -> Value {
    json!({ "queue": "3090", "gpus": 1, "cpus": 1, "memory": "256M" })
}

async fn rig_with(gpus: usize, workers: usize, queue_3090: &str) -> Result<Rig> {
    Rig::start_with(
        &[gpu_host("gpu-1", gpus, "3090")],
        Options {
            workers,
            queue_3090: queue_3090.to_string(),
            ..Options::default()
        },
    )
    .await
}

async fn person(rig: &Rig, name: &str) -> Result<String> {
    let token = rig.researcher(name);
    rig.add_key(&token).await?;
    Ok(token)
}

/// Creates and expects the request to wait; returns it.
async fn queued(rig: &Rig, token: &str, body: Value) -> Result<Value> {
    let (status, v) = rig.create(token, body).await?;
    anyhow::ensure!(
        status == 202 && v["state"] == "pending",
        "expected to wait: {status} {v}"
    );
    Ok(v)
}

async fn placed(rig: &Rig, token: &str, body: Value) -> Result<Value> {
    let (status, v) = rig.create(token, body).await?;
    anyhow::ensure!(
        status == 202 && v["state"] != "pending",
        "expected a placement: {status} {v}"
    );
    Ok(v)
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

/// Waits until the request has left the line for one of `states`.
async fn left_line(rig: &Rig, token: &str, v: &Value, states: &[&str]) -> Result<Value> {
    rig.wait_state(token, &id(v), states, Duration::from_secs(60))
        .await
}

async fn position(rig: &Rig, token: &str, v: &Value) -> Result<u64> {
    let now = rig.show(token, &id(v)).await?;
    now["line"]["position"]
        .as_u64()
        .with_context(|| format!("no place: {now}"))
}

/// Kills without waiting for the burial.
async fn cancel(rig: &Rig, token: &str, v: &Value) -> Result<Value> {
    let (status, body) = rig
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/vessels/{}", id(v)),
            token,
            None,
        )
        .await?;
    anyhow::ensure!(status == 202, "kill: {status} {body}");
    Ok(body)
}

async fn events_of(rig: &Rig, vessel: &str, kind: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM events WHERE vessel_id = $1::uuid AND kind = $2")
            .bind(vessel)
            .bind(kind)
            .fetch_one(&rig.db)
            .await?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_wait_in_order_and_a_kill_places_the_head_which_runs() -> Result<()> {
    let rig = rig_with(1, 4, "").await?;
    let alice = person(&rig, "alice").await?;
    let first = rig.launch(&alice, one_gpu()).await?;
    let mut line = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let token = person(&rig, name).await?;
        let v = queued(&rig, &token, one_gpu()).await?;
        line.push((token, v));
    }
    for (n, (token, v)) in line.iter().enumerate() {
        assert_eq!(v["line"]["position"], n as u64 + 1, "{v}");
        assert_eq!(v["line"]["reason"], "no host has 1 GPU free in 3090", "{v}");
        assert_eq!(position(&rig, token, v).await?, n as u64 + 1);
    }
    // The holder's lifetime ends in a day: that is the honest estimate.
    assert_eq!(
        line[0].1["line"]["estimate"]["host"], "gpu-1",
        "{}",
        line[0].1
    );

    rig.kill(&alice, &id(&first)).await?;
    let (bob, b) = &line[0];
    let running = left_line(&rig, bob, b, &["running", "failed"]).await?;
    assert_eq!(running["state"], "running", "{running}");
    let who = rig.ssh(&running["ssh"], "id -un")?;
    assert_eq!(who.trim(), "bob");
    // Its lifetime counts from placement, not from joining the line.
    let at = |v: &Value| -> Result<chrono::DateTime<chrono::Utc>> {
        Ok(v["expires_at"].as_str().context("expires_at")?.parse()?)
    };
    assert!(at(&running)? > at(b)?, "{running} {b}");
    // Those behind moved up, and were told.
    let (carol, c) = &line[1];
    let (dave, d) = &line[2];
    eventually("carol to be first", Duration::from_secs(10), || async {
        Ok((position(&rig, carol, c).await? == 1).then_some(()))
    })
    .await?;
    assert_eq!(position(&rig, dave, d).await?, 2);
    assert!(events_of(&rig, &id(c), "vessel.queued").await? >= 1);
    assert_eq!(events_of(&rig, &id(b), "vessel.pending").await?, 1);

    // Metrics count the placement from the line and the two still waiting.
    let metrics = reqwest::Client::new()
        .get(rig.url("/metrics"))
        .bearer_auth(rig.token("prometheus", &["fleet:read"]))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("vessel_line_waiting{queue=\"3090\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vessel_line_wait_seconds_count 1"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_false_is_refused_at_once_and_writes_nothing() -> Result<()> {
    let rig = rig_with(1, 0, "").await?;
    let alice = person(&rig, "alice").await?;
    placed(&rig, &alice, one_gpu()).await?;
    let (status, body) = rig
        .create(&alice, json!({ "queue": "3090", "gpus": 1, "wait": false }))
        .await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "no_capacity");
    let vessels: i64 = sqlx::query_scalar("SELECT count(*) FROM vessels")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(vessels, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_could_never_fit_is_refused_not_queued() -> Result<()> {
    let rig = rig_with(2, 0, "max_gpus = 2").await?;
    let alice = person(&rig, "alice").await?;
    let (status, body) = rig
        .create(
            &alice,
            json!({ "queue": "3090", "gpus": 1, "memory": "999999T" }),
        )
        .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "memory", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the largest is gpu-1"),
        "{body}"
    );
    let (status, body) = rig
        .create(&alice, json!({ "queue": "3090", "gpus": 3 }))
        .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "gpus", "{body}");
    let vessels: i64 = sqlx::query_scalar("SELECT count(*) FROM vessels")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(vessels, 0);
    Ok(())
}

/// Hosts of two cores each (the machine's): two hosts of two GPUs hold four
/// one-core vessels.
async fn two_hosts(workers: usize, queue_3090: &str) -> Result<Rig> {
    Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090"), gpu_host("gpu-2", 2, "3090")],
        Options {
            workers,
            queue_3090: queue_3090.to_string(),
            ..Options::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_waits_and_does_not_block_the_next_person() -> Result<()> {
    let rig = two_hosts(0, "max_gpus = 2").await?;
    let alice = person(&rig, "alice").await?;
    let bob = person(&rig, "bob").await?;
    for _ in 0..2 {
        placed(&rig, &alice, one_gpu()).await?;
    }
    let third = queued(&rig, &alice, one_gpu()).await?;
    assert_eq!(
        third["line"]["reason"], "over your limit of 2 GPUs in 3090 (2 in use)",
        "{third}"
    );
    let behind = placed(&rig, &bob, one_gpu()).await?;
    assert_eq!(behind["state"], "provisioning", "{behind}");

    // An admin raises alice's limit: the line moves without another request.
    let admin = rig.token(ADMIN, vessel_api::perm::ADMIN);
    let (status, limits) = rig
        .call(
            reqwest::Method::PUT,
            "/v1/users/alice/limits/3090",
            &admin,
            Some(json!({ "max_gpus": 3 })),
        )
        .await?;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["overridden"], true);
    left_line(&rig, &alice, &third, &["provisioning"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_big_request_is_not_overtaken_forever() -> Result<()> {
    // One host of 2 GPUs: alice holds one, bob wants both. Before
    // `hold_after` a one-GPU newcomer fills the free GPU (backfill); after
    // it, the host is held for bob and newcomers wait behind him.
    let rig = rig_with(2, 4, "hold_after = \"3s\"").await?;
    let alice = person(&rig, "alice").await?;
    let bob = person(&rig, "bob").await?;
    let carol = person(&rig, "carol").await?;
    let a = rig.launch(&alice, one_gpu()).await?;
    let big = queued(
        &rig,
        &bob,
        json!({ "queue": "3090", "gpus": 2, "cpus": 1, "memory": "256M" }),
    )
    .await?;
    let early = placed(&rig, &carol, one_gpu()).await?;
    eventually("the hold", Duration::from_secs(15), || async {
        let v = rig.show(&bob, &id(&big)).await?;
        Ok((v["line"]["holds"] == "gpu-1").then_some(()))
    })
    .await?;
    rig.kill(&alice, &id(&a)).await?;
    let late = queued(&rig, &carol, one_gpu()).await?;
    assert!(
        late["line"]["reason"]
            .as_str()
            .unwrap()
            .contains("gpu-1 is held"),
        "{late}"
    );
    rig.kill(&carol, &id(&early)).await?;
    left_line(&rig, &bob, &big, &["provisioning", "running"]).await?;
    let still = rig.show(&carol, &id(&late)).await?;
    assert_eq!(still["state"], "pending", "{still}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_expiry_end_a_wait_and_move_the_line() -> Result<()> {
    let rig = rig_with(1, 0, "max_wait = \"4s\"").await?;
    let alice = person(&rig, "alice").await?;
    let bob = person(&rig, "bob").await?;
    placed(&rig, &alice, one_gpu()).await?;
    let first = queued(
        &rig,
        &bob,
        json!({ "queue": "3090", "gpus": 1, "name": "first" }),
    )
    .await?;
    let second = queued(
        &rig,
        &bob,
        json!({ "queue": "3090", "gpus": 1, "name": "second" }),
    )
    .await?;
    assert_eq!(second["line"]["position"], 2);

    let gone = cancel(&rig, &bob, &first).await?;
    assert_eq!(gone["state"], "buried", "{gone}");
    assert!(
        gone["reason"]
            .as_str()
            .unwrap()
            .starts_with("cancelled while waiting"),
        "{gone}"
    );
    eventually("second to move up", Duration::from_secs(10), || async {
        Ok((position(&rig, &bob, &second).await? == 1).then_some(()))
    })
    .await?;

    let expired = left_line(&rig, &bob, &second, &["expired"]).await?;
    assert!(
        expired["reason"]
            .as_str()
            .unwrap()
            .contains("waited in line"),
        "{expired}"
    );
    assert_eq!(events_of(&rig, &id(&second), "vessel.expired").await?, 1);
    let audits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action IN ('vessel.cancel', 'vessel.expire')",
    )
    .fetch_one(&rig.db)
    .await?;
    assert_eq!(audits, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_moves_a_request_to_the_front() -> Result<()> {
    let rig = rig_with(1, 4, "").await?;
    let alice = person(&rig, "alice").await?;
    let a = rig.launch(&alice, one_gpu()).await?;
    let mut waiting = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let token = person(&rig, name).await?;
        waiting.push((token.clone(), queued(&rig, &token, one_gpu()).await?));
    }
    let (dave, d) = &waiting[2];
    let admin = rig.token(ADMIN, vessel_api::perm::ADMIN);
    let (status, body) = rig
        .call(
            reqwest::Method::POST,
            &format!("/v1/line/{}/front", id(d)),
            &admin,
            None,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["line"]["position"], 1, "{body}");
    let (status, body) = rig
        .call(
            reqwest::Method::POST,
            &format!("/v1/line/{}/front", id(d)),
            &alice,
            None,
        )
        .await?;
    assert_eq!(status, 403, "a researcher may not: {body}");

    rig.kill(&alice, &id(&a)).await?;
    left_line(&rig, dave, d, &["provisioning", "running"]).await?;
    let (bob, b) = &waiting[0];
    assert_eq!(rig.show(bob, &id(b)).await?["state"], "pending");
    assert_eq!(position(&rig, bob, b).await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_goes_to_the_head_of_the_line_not_a_newcomer() -> Result<()> {
    let rig = rig_with(1, 4, "").await?;
    let alice = person(&rig, "alice").await?;
    let bob = person(&rig, "bob").await?;
    let mut others = Vec::new();
    for n in 0..20 {
        others.push(person(&rig, &format!("newcomer{n}")).await?);
    }
    let a = rig.launch(&alice, one_gpu()).await?;
    let head = queued(&rig, &bob, one_gpu()).await?;
    // The release and newcomers together, over the whole burial.
    let newcomers = async {
        let mut seen = Vec::new();
        for token in &others {
            let (status, v) = rig.create(token, one_gpu()).await?;
            anyhow::ensure!(status == 202, "{status} {v}");
            seen.push(v);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<_, anyhow::Error>(seen)
    };
    let first = id(&a);
    let (killed, newcomers) = tokio::join!(rig.kill(&alice, &first), newcomers);
    killed?;
    let newcomers = newcomers?;
    left_line(&rig, &bob, &head, &["provisioning", "running"]).await?;
    for v in &newcomers {
        assert_eq!(v["state"], "pending", "a newcomer overtook the head: {v}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_racing_passes_never_place_twice() -> Result<()> {
    // Four GPUs on two drained hosts, twenty waiting; undrain with a
    // second orchestrator on the same database, and extra passes on top.
    let rig = two_hosts(0, "").await?;
    let admin = rig.token(ADMIN, vessel_api::perm::ADMIN);
    let host_call = |host: &'static str, verb: &'static str| {
        let path = format!("/v1/hosts/{host}/{verb}");
        let admin = admin.clone();
        let rig = &rig;
        async move {
            let (status, body) = rig.call(reqwest::Method::POST, &path, &admin, None).await?;
            anyhow::ensure!(status == 200, "{verb} {host}: {status} {body}");
            Ok(())
        }
    };
    host_call("gpu-1", "drain").await?;
    host_call("gpu-2", "drain").await?;
    for n in 0..20 {
        let token = person(&rig, &format!("user{n}")).await?;
        let v = queued(&rig, &token, one_gpu()).await?;
        assert_eq!(
            v["line"]["reason"], "every host of 3090 is offline or drained",
            "{v}"
        );
    }
    let config = vessel_orchestrator::config::Config::from_toml_str(&rig.config_text)?;
    let second = vessel_orchestrator::startup::Application::build(config.clone()).await?;
    let clock: std::sync::Arc<dyn vessel_orchestrator::clock::Clock> =
        std::sync::Arc::new(vessel_orchestrator::clock::SystemClock);
    let config = std::sync::Arc::new(config);
    let racers: Vec<_> = (0..4)
        .map(|_| {
            vessel_orchestrator::line::LineWorker::new(
                rig.db.clone(),
                config.clone(),
                clock.clone(),
            )
        })
        .collect();
    let (one, two, passes) = tokio::join!(
        host_call("gpu-1", "undrain"),
        host_call("gpu-2", "undrain"),
        futures::future::join_all(racers.iter().map(|r| r.pass("3090")))
    );
    one?;
    two?;
    for p in passes {
        p?;
    }
    let placed: i64 = eventually("four placements", Duration::from_secs(10), || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM vessels WHERE state = 'provisioning'")
                .fetch_one(&rig.db)
                .await?;
        Ok((n == 4).then_some(n))
    })
    .await?;
    assert_eq!(placed, 4);
    let (claims, reservations, events, audits): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM gpu_claims), (SELECT count(*) FROM reservations),
                (SELECT count(*) FROM events WHERE kind = 'vessel.provisioning'),
                (SELECT count(*) FROM audit_log WHERE action = 'vessel.place')",
    )
    .fetch_one(&rig.db)
    .await?;
    assert_eq!((claims, reservations, events, audits), (4, 4, 4, 4));
    // The counters the line reads agree with the claims.
    let (used_gpus, usage_gpus, usage_vessels): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT sum(used_gpus) FROM hosts)::bigint,
                (SELECT sum(gpus) FROM queue_usage)::bigint,
                (SELECT sum(vessels) FROM queue_usage)::bigint",
    )
    .fetch_one(&rig.db)
    .await?;
    assert_eq!((used_gpus, usage_gpus, usage_vessels), (4, 4, 4));
    let positions: Vec<i32> =
        eventually("the places renumbered", Duration::from_secs(10), || async {
            let p: Vec<i32> = sqlx::query_scalar(
                "SELECT line_position FROM vessels WHERE state = 'pending' ORDER BY line_seq",
            )
            .fetch_all(&rig.db)
            .await?;
            Ok((p == (1..=16).collect::<Vec<i32>>()).then_some(p))
        })
        .await?;
    assert_eq!(positions.len(), 16);
    second.stop().await;
    Ok(())
}

/// Once placed, a request's reason for waiting is over: `vessel show` and
/// the API's view of a running vessel do not still say "no host has 1 GPU
/// free".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_placed_request_no_longer_says_why_it_waited() -> Result<()> {
    let rig = rig_with(1, 4, "").await?;
    let alice = person(&rig, "alice").await?;
    let first = rig.launch(&alice, one_gpu()).await?;
    let bob = person(&rig, "bob").await?;
    let waiting = queued(&rig, &bob, one_gpu()).await?;
    assert_eq!(
        waiting["line"]["reason"], "no host has 1 GPU free in 3090",
        "{waiting}"
    );

    rig.kill(&alice, &id(&first)).await?;
    let running = left_line(&rig, &bob, &waiting, &["running", "failed"]).await?;
    assert_eq!(running["state"], "running", "{running}");
    assert!(running["reason"].is_null(), "{running}");
    assert!(running["line"].is_null(), "{running}");
    Ok(())
}
