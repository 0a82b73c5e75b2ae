//! The core path: a request becomes a vessel a researcher can SSH into, with
//! exactly what was asked for; kill gives everything back.

use std::time::Duration;

use serde_json::json;

use crate::rig::{cpu_host, docker, eventually, gpu_host, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creating_a_vessel_gives_a_working_ssh_login() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 4, "3090"), cpu_host("cpu-1")]).await?;
    let alice = rig.researcher("alice@lab.org");
    rig.add_key(&alice).await?;

    let (status, created) = rig
        .create(
            &alice,
            json!({ "queue": "3090", "gpus": 2, "cpus": 2, "memory": "2G", "name": "train" }),
        )
        .await?;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["host"], "gpu-1");
    let id = created["id"].as_str().unwrap().to_string();

    let vessel = rig
        .wait_state(&alice, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    assert_eq!(vessel["state"], "running", "{vessel}");
    let access = &vessel["ssh"];
    assert!(
        access["config"].as_str().unwrap().contains("HostName"),
        "{access}"
    );
    let reserved: Vec<String> = vessel["gpu_uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    assert_eq!(reserved.len(), 2);

    // Inside, over real SSH with the host key checked against the DM's line.
    let out = rig.ssh(
        access,
        "id -un; id -u; nproc; \
         cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         echo \"$NVIDIA_VISIBLE_DEVICES\"; \
         touch ~/written && stat -c %U ~/written && pwd",
    )?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "alice", "{out}");
    let uid: u32 = lines[1].parse()?;
    assert!(uid >= 20000, "{out}");
    assert_eq!(lines[2], "2", "nproc: {out}");
    assert_eq!(lines[3], (2u64 << 30).to_string(), "memory limit: {out}");
    assert_eq!(lines[4], reserved.join(","), "GPU visibility: {out}");
    assert_eq!(lines[5], "alice", "home not writable by its owner: {out}");
    assert_eq!(lines[6], "/home/alice");

    // The home lives on the host, under its home root.
    let home_file = rig.dir.join("homes/gpu-1/alice/written");
    assert!(home_file.exists(), "{} missing", home_file.display());

    // Capacity is held while it runs.
    let fleet = rig.fleet(&alice).await?;
    assert_eq!(fleet["queues"]["3090"]["gpus_free"], 2, "{fleet}");

    // Kill: the container goes, the capacity comes back, the row stays.
    let (status, _) = rig
        .call(reqwest::Method::DELETE, "/v1/vessels/train", &alice, None)
        .await?;
    assert_eq!(status, 202);
    let buried = rig
        .wait_state(&alice, &id, &["buried"], Duration::from_secs(30))
        .await?;
    assert!(buried["reason"].as_str().unwrap().contains("killed"));
    assert!(
        docker(&["inspect", &format!("vessel-{id}")]).is_err(),
        "the container is still there"
    );
    let fleet = rig.fleet(&alice).await?;
    assert_eq!(fleet["queues"]["3090"]["gpus_free"], 4, "{fleet}");
    assert_eq!(fleet["queues"]["3090"]["cores_free"], 2, "{fleet}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cpu_vessel_sees_no_gpus_and_the_fleet_shows_both_hosts() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 4, "3090"), cpu_host("cpu-1")]).await?;
    let bob = rig.researcher("bob");
    rig.add_key(&bob).await?;

    let fleet = rig.fleet(&bob).await?;
    let hosts = fleet["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{fleet}");
    assert_eq!(fleet["queues"]["3090"]["gpus"], 4);
    assert_eq!(fleet["queues"]["cpu"]["gpus"], 0);
    assert!(hosts.iter().all(|h| h["online"] == true), "{fleet}");

    let (status, created) = rig.create(&bob, json!({ "queue": "cpu" })).await?;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["host"], "cpu-1");
    let id = created["id"].as_str().unwrap().to_string();
    let vessel = rig
        .wait_state(&bob, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    assert_eq!(vessel["state"], "running", "{vessel}");
    let out = rig.ssh(
        &vessel["ssh"],
        "id -un; nproc; echo \"$NVIDIA_VISIBLE_DEVICES\"",
    )?;
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["bob", "1", "none"]);

    // Two vessels never share an address on a host.
    let (_, second) = rig.create(&bob, json!({ "queue": "cpu" })).await?;
    let second_id = second["id"].as_str().unwrap().to_string();
    let second = rig
        .wait_state(
            &bob,
            &second_id,
            &["running", "failed"],
            Duration::from_secs(60),
        )
        .await?;
    assert_eq!(second["state"], "running", "{second}");
    assert_ne!(second["address"], vessel["address"]);
    eventually("both listed", Duration::from_secs(5), || async {
        let (_, list) = rig
            .call(reqwest::Method::GET, "/v1/vessels", &bob, None)
            .await?;
        Ok((list["vessels"].as_array().map(Vec::len) == Some(2)).then_some(()))
    })
    .await?;
    Ok(())
}

/// The init reaches the container on its stdin, not in its config: nothing
/// secret shows in `docker inspect`, and a container started again (by an
/// admin, by hand) runs the init it already has instead of waiting for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_init_keeps_secrets_out_of_the_containers_config_and_survives_a_restart(
) -> anyhow::Result<()> {
    let rig = Rig::start(&[cpu_host("cpu-1")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let vessel = rig.launch(&alice, json!({ "queue": "cpu" })).await?;
    let id = vessel["id"].as_str().unwrap().to_string();
    let container = format!("vessel-{id}");
    let token: String = sqlx::query_scalar("SELECT jupyter_token FROM vessels WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&rig.db)
        .await?;

    let inspected = docker(&["inspect", &container])?;
    assert!(
        !inspected.contains("PRIVATE KEY") && !inspected.contains(&token),
        "a secret is in the container's config: {inspected}"
    );

    docker(&["restart", "-t", "1", &container])?;
    let access = vessel["ssh"].clone();
    let out = eventually("a login after the restart", Duration::from_secs(30), || {
        let out = rig.ssh(&access, "id -un").ok();
        async move { Ok(out) }
    })
    .await?;
    assert_eq!(out, "alice");
    Ok(())
}
