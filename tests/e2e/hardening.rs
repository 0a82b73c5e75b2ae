//! Invariant 6, inspected on a real container: exactly what was reserved,
//! no privileges, no Docker socket, no host namespaces — and login works.

use std::collections::HashSet;

use serde_json::json;
use vessel_orchestrator::conductor::spec::CAPABILITIES;

use crate::rig::{docker, gpu_host, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vessel_container_has_no_privileges_and_only_its_share() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let vessel = rig
        .launch(
            &alice,
            json!({ "queue": "3090", "gpus": 1, "cpus": 1, "memory": "1G" }),
        )
        .await?;
    let id = vessel["id"].as_str().unwrap();

    let inspect: serde_json::Value =
        serde_json::from_str(&docker(&["inspect", &format!("vessel-{id}")])?)?;
    let hc = &inspect[0]["HostConfig"];
    assert_eq!(hc["Privileged"], false);
    for ns in ["NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode"] {
        assert_ne!(hc[ns], "host", "{ns} is the host's");
    }
    let mounts = inspect[0]["Mounts"].to_string() + &hc["Binds"].to_string();
    assert!(
        !mounts.contains("docker.sock"),
        "the Docker socket is mounted: {mounts}"
    );
    assert!(
        !mounts.contains("\"/\""),
        "the host root is mounted: {mounts}"
    );
    let dropped: Vec<&str> = hc["CapDrop"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(
        dropped
            .iter()
            .any(|c| c.eq_ignore_ascii_case("ALL") || *c == "CAP_ALL"),
        "{dropped:?}"
    );
    let allowed: HashSet<String> = CAPABILITIES
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    for cap in hc["CapAdd"].as_array().unwrap() {
        let cap = cap.as_str().unwrap().trim_start_matches("CAP_").to_string();
        assert!(
            allowed.contains(&cap),
            "capability {cap} is not in the allowed set"
        );
    }
    let secopt = hc["SecurityOpt"].to_string();
    assert!(secopt.contains("no-new-privileges"), "{secopt}");
    assert!(hc["PidsLimit"].as_i64().unwrap_or(0) > 0, "no PIDs limit");
    assert_eq!(hc["Memory"], 1i64 << 30);
    assert_eq!(
        hc["MemorySwap"], hc["Memory"],
        "swap beyond the reservation"
    );
    let cores: Vec<String> = vessel["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(hc["CpusetCpus"], cores.join(","));

    // And still: the user logs in, and holds no capabilities of their own.
    let out = rig.ssh(&vessel["ssh"], "id -un; grep CapEff /proc/self/status")?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "alice");
    assert_eq!(
        lines[1].split_whitespace().nth(1),
        Some("0000000000000000"),
        "{out}"
    );
    Ok(())
}

/// The attack: a vessel prints without end (a runaway training loop's
/// progress bar) and Docker keeps every byte under `/var/lib/docker`, until
/// the host's disk is full for every vessel on it. Its log is now rotated:
/// two files of 5 MB at most, whatever the engine's defaults (this machine's
/// keep three of 10 MB, so the cap checked here is the vessel's own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vessel_printing_100_mb_leaves_at_most_the_log_cap() -> anyhow::Result<()> {
    use anyhow::Context;
    let rig = Rig::start(&[gpu_host("gpu-1", 1, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let vessel = rig.launch(&alice, json!({ "queue": "3090" })).await?;
    let container = format!("vessel-{}", vessel["id"].as_str().context("id")?);
    // Onto the container's own stdout (its init's), as its main process
    // would print.
    docker(&[
        "exec",
        &container,
        "sh",
        "-c",
        "(head -c 100000000 /dev/zero | tr '\\000' x; echo; echo vessel-log-end) > /proc/1/fd/1",
    ])?;
    let log = docker(&["inspect", "--format", "{{.LogPath}}", &container])?;
    let log = std::path::PathBuf::from(log.trim());
    let dir = log.parent().context("the log's directory")?.to_path_buf();
    let name = log
        .file_name()
        .context("the log's name")?
        .to_string_lossy()
        .to_string();
    let total = || -> anyhow::Result<u64> {
        let mut sum = 0;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&name) {
                sum += entry.metadata()?.len();
            }
        }
        Ok(sum)
    };
    // The logger has written the last line (so every byte went through
    // it) …
    crate::rig::eventually(
        "the log's last line",
        std::time::Duration::from_secs(120),
        || async {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(tail.contains("vessel-log-end").then_some(()))
        },
    )
    .await?;
    // … and what it keeps is within the cap, with room for one line.
    let kept = total()?;
    assert!(
        kept <= 11 << 20,
        "the host keeps {kept} bytes of this vessel's log"
    );
    Ok(())
}
