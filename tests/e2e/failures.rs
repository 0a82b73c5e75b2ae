//! Every request ends `running` or `failed`; a failure says why and leaves
//! nothing behind: no container, no reservation.

use std::time::Duration;

use serde_json::json;

use crate::rig::{docker, gpu_host, Options, Rig};

async fn assert_nothing_left(rig: &Rig, token: &str) -> anyhow::Result<()> {
    assert!(
        rig.vessel_containers()?.is_empty(),
        "containers left: {:?}",
        rig.vessel_containers()?
    );
    let reservations: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(reservations, 0, "a reservation was left");
    let fleet = rig.fleet(token).await?;
    for host in fleet["hosts"].as_array().unwrap() {
        assert_eq!(host["cores_used"], 0, "{host}");
        for gpu in host["gpus"].as_array().unwrap() {
            assert!(gpu["vessel"].is_null(), "a GPU is still held: {gpu}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_that_is_not_on_the_host_fails_with_the_reason() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig
        .create(
            &alice,
            json!({ "queue": "3090", "image": "vessel/absent:1" }),
        )
        .await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    let failed = rig
        .wait_state(&alice, id, &["failed", "running"], Duration::from_secs(30))
        .await?;
    assert_eq!(failed["state"], "failed");
    assert_eq!(
        failed["reason"],
        "image vessel/absent:1 is not on host gpu-1 and no registry is set"
    );
    assert_nothing_left(&rig, &alice).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_that_refuses_ssh_fails_the_vessel_and_goes_offline() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    // The host stops accepting our key and drops the session it had.
    let host = &rig.host("gpu-1").container;
    docker(&["exec", host, "rm", "-f", "/root/.ssh/authorized_keys"])?;
    docker(&["exec", host, "pkill", "-f", "sshd: root"]).ok();

    let (status, v) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    let failed = rig
        .wait_state(&alice, id, &["failed", "running"], Duration::from_secs(60))
        .await?;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("gpu-1") && reason.contains("refused"),
        "{reason}"
    );
    assert_nothing_left(&rig, &alice).await?;

    // And no new vessel is sent there until a probe succeeds: it waits in
    // line, saying why; with `wait: false` it is refused, naming the host.
    let (status, body) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "pending", "{body}");
    assert_eq!(body["line"]["reason"], "host gpu-1 is offline", "{body}");
    let (status, body) = rig
        .create(&alice, json!({ "queue": "3090", "wait": false }))
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("gpu-1: offline"),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_that_never_gets_ready_fails_and_is_removed() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            ready_timeout: "3s",
            ..Options::default()
        },
    )
    .await?;
    // An image whose sshd never answers: it sleeps instead.
    let image = format!("vessel/mute:{}", rig.id);
    let builder = format!("vessel-{}-mute", rig.id);
    crate::rig::derive_image(
        &image,
        &builder,
        "printf '#!/bin/sh\\nexec sleep 3600\\n' > /usr/sbin/sshd && chmod 755 /usr/sbin/sshd",
    )?;

    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig
        .create(&alice, json!({ "queue": "3090", "image": image }))
        .await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    let failed = rig
        .wait_state(&alice, id, &["failed", "running"], Duration::from_secs(60))
        .await?;
    docker(&["rmi", "-f", &image]).ok();
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("sshd did not answer"), "{reason}");
    assert!(
        reason.contains("vessel-init: ready"),
        "the init's log is in the reason: {reason}"
    );
    assert_nothing_left(&rig, &alice).await
}
