//! Vessels on one host share its vessel network, and their sshd listens on
//! every interface (Jupyter on the loopback only): one vessel must not reach
//! another through it. The rig's network is made as the README tells operators to
//! (inter-container traffic off), and one made otherwise is refused.

use std::time::Duration;

use serde_json::json;

use vessel_orchestrator::config::Config;
use vessel_orchestrator::startup::Application;

use crate::rig::{cpu_host, ssh_banner, Options, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vessel_cannot_reach_another_vessels_sshd_on_the_same_host() -> anyhow::Result<()> {
    let rig = Rig::start(&[cpu_host("cpu-1")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let bob = rig.researcher("bob");
    rig.add_key(&bob).await?;
    let mine = rig.launch(&alice, json!({ "queue": "cpu" })).await?;
    let theirs = rig.launch(&bob, json!({ "queue": "cpu" })).await?;
    assert_eq!(mine["host"], theirs["host"]);
    let target = theirs["ssh"]["address"].as_str().unwrap().to_string();

    // Bob's sshd answers (from the host, where the orchestrator is)...
    assert!(ssh_banner(&target).await, "bob's sshd is not up");
    // ...but not from inside Alice's vessel.
    let out = rig.ssh(
        &mine["ssh"],
        &format!(
            "timeout 3 bash -c '</dev/tcp/{target}/22' 2>/dev/null && echo reached || echo blocked"
        ),
    )?;
    assert_eq!(
        out, "blocked",
        "alice's vessel reached bob's sshd at {target}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bridge_that_lets_vessels_reach_each_other_is_refused() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[cpu_host("cpu-1")],
        Options {
            network_icc: true,
            ..Options::default()
        },
    )
    .await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig.create(&alice, json!({ "queue": "cpu" })).await?;
    assert_eq!(status, 202, "{v}");
    let vessel = rig
        .wait_state(
            &alice,
            v["id"].as_str().unwrap(),
            &["running", "failed"],
            Duration::from_secs(60),
        )
        .await?;
    assert_eq!(vessel["state"], "failed", "a vessel ran on a shared bridge");
    let reason = vessel["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&rig.network) && reason.contains("enable_icc=false"),
        "{reason}"
    );
    assert!(rig.vessel_containers()?.is_empty());
    Ok(())
}

/// A network whose driver Vessel does not know to keep vessels apart is
/// refused by name (issue: "the isolation check accepts any network driver
/// that is not `bridge`"). Docker's own `host` network is the one such
/// network every engine has (ipvlan and macvlan need kernel modules this
/// machine may lack): a vessel on it would share the host's interfaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_network_whose_driver_vessel_does_not_know_to_isolate_is_refused() -> anyhow::Result<()> {
    let mut rig = Rig::start_with(
        &[cpu_host("cpu-1")],
        Options {
            orchestrator: false,
            ..Options::default()
        },
    )
    .await?;
    let ours = format!("docker_network = \"{}\"", rig.network);
    anyhow::ensure!(rig.config_text.contains(&ours), "{}", rig.config_text);
    rig.config_text = rig.config_text.replace(&ours, "docker_network = \"host\"");
    rig.app = Some(Application::build(Config::from_toml_str(&rig.config_text)?).await?);
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig.create(&alice, json!({ "queue": "cpu" })).await?;
    assert_eq!(status, 202, "{v}");
    let vessel = rig
        .wait_state(
            &alice,
            v["id"].as_str().unwrap(),
            &["running", "failed"],
            Duration::from_secs(60),
        )
        .await?;
    assert_eq!(
        vessel["state"], "failed",
        "a vessel ran on the host network"
    );
    let reason = vessel["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("network host uses driver `host`")
            && reason.contains("does not know to isolate vessels")
            && reason.contains("macvlan"),
        "{reason}"
    );
    assert!(rig.vessel_containers()?.is_empty());
    Ok(())
}
