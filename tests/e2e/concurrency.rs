//! Invariant 1 under load: concurrent creates never double-book, and the
//! database itself refuses a second live claim.

use std::collections::HashSet;

use serde_json::json;

use crate::rig::{gpu_host, Options, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_on_eight_gpus_place_exactly_eight() -> anyhow::Result<()> {
    // Four hosts of two GPUs (and two cores) each: 8 GPUs, 8 cores. The
    // conductor is off: this is about reservations, not containers.
    let rig = Rig::start_with(
        &[
            gpu_host("gpu-1", 2, "3090"),
            gpu_host("gpu-2", 2, "3090"),
            gpu_host("gpu-3", 2, "3090"),
            gpu_host("gpu-4", 2, "3090"),
        ],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let tokens: Vec<String> = (0..50)
        .map(|i| rig.researcher(&format!("user{i}")))
        .collect();
    for token in &tokens {
        rig.add_key(token).await?;
    }

    let results = futures::future::join_all(tokens.iter().map(|token| {
        rig.create(
            token,
            json!({ "queue": "3090", "gpus": 1, "cpus": 1, "memory": "1G", "wait": false }),
        )
    }))
    .await;

    let mut placed = Vec::new();
    let mut refused = 0;
    for result in results {
        let (status, body) = result?;
        match status {
            202 => placed.push(body),
            409 => {
                assert_eq!(body["error"], "no_capacity", "{body}");
                assert!(
                    body["message"].as_str().unwrap().contains("Free now"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(placed.len(), 8, "placed: {placed:?}");
    assert_eq!(refused, 42);

    let mut gpus = HashSet::new();
    let mut cores = HashSet::new();
    for v in &placed {
        for g in v["gpu_uuids"].as_array().unwrap() {
            assert!(
                gpus.insert(g.as_str().unwrap().to_string()),
                "GPU twice: {g}"
            );
        }
        for c in v["cores"].as_array().unwrap() {
            let key = format!("{}/{}", v["host"], c);
            assert!(cores.insert(key.clone()), "core twice: {key}");
        }
    }
    assert_eq!(gpus.len(), 8);

    // The database agrees: 8 claims, none shared.
    let claims: i64 = sqlx::query_scalar("SELECT count(DISTINCT gpu_id) FROM gpu_claims")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(claims, 8);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_claim_on_a_live_gpu_or_core_is_rejected_by_the_database() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig
        .create(&alice, json!({ "queue": "3090", "gpus": 1, "cpus": 1 }))
        .await?;
    assert_eq!(status, 202, "{v}");

    // A second vessel row, then a hand-written claim on the same GPU.
    let mut tx = rig.db.begin().await?;
    let other: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO vessels (id, name, owner_id, queue, image, gpus, cpus, memory_bytes, state, expires_at)
         SELECT gen_random_uuid(), 'sneaky', owner_id, queue, image, 1, 1, 1, 'provisioning', expires_at
         FROM vessels LIMIT 1 RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO reservations (vessel_id, host_id, memory_bytes)
         SELECT $1, host_id, 1 FROM reservations LIMIT 1",
    )
    .bind(other)
    .execute(&mut *tx)
    .await?;
    let gpu = sqlx::query(
        "INSERT INTO gpu_claims (gpu_id, vessel_id) SELECT gpu_id, $1 FROM gpu_claims LIMIT 1",
    )
    .bind(other)
    .execute(&mut *tx)
    .await;
    let err = gpu.expect_err("a GPU was claimed twice");
    assert_eq!(
        err.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("23505"),
        "{err}"
    );
    tx.rollback().await?;

    let mut tx = rig.db.begin().await?;
    let core = sqlx::query(
        "INSERT INTO core_claims (host_id, core, vessel_id)
         SELECT host_id, core, vessel_id FROM core_claims LIMIT 1",
    )
    .execute(&mut *tx)
    .await;
    assert!(core.is_err(), "a core was claimed twice");
    tx.rollback().await?;

    // Memory: a reservation past the host's memory is refused by the trigger.
    let mut tx = rig.db.begin().await?;
    let huge = sqlx::query(
        "UPDATE reservations SET memory_bytes = (SELECT memory_bytes + 1 FROM hosts LIMIT 1)",
    )
    .execute(&mut *tx)
    .await;
    let err = huge.expect_err("memory was over-reserved");
    assert_eq!(
        err.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("23514"),
        "{err}"
    );
    Ok(())
}
