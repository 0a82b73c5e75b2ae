//! A vessel is ready when its address proves the host key made for it, in
//! direct mode as on the tailnet: an SSH server there with any other key is
//! someone else (a machine that took the address, an image that swapped
//! sshd's key), and the vessel fails instead of being handed out.

use std::time::Duration;

use serde_json::json;

use crate::rig::{cpu_host, docker, Rig};

/// vessel/base whose sshd presents a key of its own instead of the
/// vessel's: whoever answers at the address is not the vessel.
fn rogue_sshd_image(rig: &Rig) -> anyhow::Result<String> {
    let image = format!("vessel/rogue-sshd:{}", rig.id);
    let builder = format!("vessel-{}-roguebuild", rig.id);
    let script = r#"set -e
ssh-keygen -q -t ed25519 -N '' -f /etc/rogue_host_key
mv /usr/sbin/sshd /usr/sbin/sshd.real
cat > /usr/sbin/sshd <<'SH'
#!/bin/sh
sed -i 's#^HostKey .*#HostKey /etc/rogue_host_key#' /etc/vessel/sshd_config
exec /usr/sbin/sshd.real "$@"
SH
chmod 755 /usr/sbin/sshd"#;
    crate::rig::derive_image(&image, &builder, script)?;
    Ok(image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_address_answered_with_another_host_key_never_makes_a_direct_vessel_ready(
) -> anyhow::Result<()> {
    let rig = Rig::start(&[cpu_host("cpu-1")]).await?;
    let image = rogue_sshd_image(&rig)?;
    let gus = rig.researcher("gus");
    rig.add_key(&gus).await?;
    let (status, v) = rig
        .create(&gus, json!({ "queue": "cpu", "image": image }))
        .await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let vessel = rig
        .wait_state(&gus, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    docker(&["rmi", "-f", &image]).ok();
    assert_eq!(
        vessel["state"], "failed",
        "ready though its address proved another host key: {vessel}"
    );
    let reason = vessel["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("answered with host key SHA256:") && reason.contains("not the one made"),
        "{reason}"
    );
    assert!(rig.vessel_containers()?.is_empty());
    Ok(())
}
