//! Vessels on tailscale-mode hosts join the tailnet as their own ephemeral,
//! tagged devices; kill removes the device at once. The tailnet is a local
//! fake of the Tailscale (and Headscale) API; the image carries stand-in
//! `tailscale`/`tailscaled` that record how the init called them.

use std::time::Duration;

use serde_json::json;

use crate::fake_tailnet::{FakeTailnet, Impostor, API_KEY};
use crate::rig::{
    address_on, docker, eventually, ssh_banner, tailscale_host, Options, Rig, VESSEL_IMAGE,
};

/// vessel/base plus stand-ins that record their arguments (and the key
/// `tailscale up` read) under /run/vessel-ts.
fn stand_in_image(rig: &Rig) -> anyhow::Result<String> {
    let image = format!("vessel/ts-standin:{}", rig.id);
    let builder = format!("vessel-{}-tsbuild", rig.id);
    let script = r#"set -e
cat > /usr/local/bin/tailscaled <<'SH'
#!/bin/sh
mkdir -p /run/vessel-ts
echo "$@" > /run/vessel-ts/tailscaled.args
exec python3 -c "import socket,time; s=socket.socket(socket.AF_UNIX); s.bind('/run/tailscale/tailscaled.sock'); s.listen(); time.sleep(10**6)"
SH
cat > /usr/local/bin/tailscale <<'SH'
#!/bin/sh
mkdir -p /run/vessel-ts
echo "$@" > /run/vessel-ts/up.args
for a in "$@"; do case "$a" in --auth-key=file:*) cat "${a#--auth-key=file:}" > /run/vessel-ts/key-seen;; esac; done
chmod 600 /run/vessel-ts/key-seen
SH
chmod 755 /usr/local/bin/tailscale /usr/local/bin/tailscaled"#;
    crate::rig::derive_image(&image, &builder, script)?;
    Ok(image)
}

async fn rig_with(fake: &FakeTailnet, provider: &str) -> anyhow::Result<Rig> {
    rig_with_timeout(fake, provider, "20s").await
}

async fn rig_with_timeout(
    fake: &FakeTailnet,
    provider: &str,
    device_timeout: &str,
) -> anyhow::Result<Rig> {
    let extra = format!(
        "[tailnet]\nprovider = \"{provider}\"\napi_url = \"{}\"\ntailnet = \"lab.example\"\nuser = \"vessels\"\n\
         api_key = \"{API_KEY}\"\ntags = [\"tag:vessel\"]\nuser_tag = \"tag:vessel-{{user}}\"\n\
         key_expiry = \"5m\"\ndevice_timeout = \"{device_timeout}\"\n",
        fake.url()
    );
    let rig = Rig::start_with(
        &[tailscale_host("ts-1")],
        Options {
            extra_config: extra,
            ready_timeout: "20s",
            ..Options::default()
        },
    )
    .await?;
    fake.watch(&rig.id, &rig.network);
    Ok(rig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vessel_joins_the_tailnet_with_one_tagged_key_and_leaves_at_kill() -> anyhow::Result<()> {
    let fake = FakeTailnet::start().await?;
    let rig = rig_with(&fake, "tailscale").await?;
    let image = stand_in_image(&rig)?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig
        .create(
            &alice,
            json!({ "queue": "cpu", "name": "tsv", "image": image }),
        )
        .await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let vessel = rig
        .wait_state(&alice, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    assert_eq!(vessel["state"], "running", "{vessel}");

    // Exactly one key, single-use, ephemeral, pre-authorised, tagged, short.
    let mints = fake.calls("POST", "/api/v2/tailnet/lab.example/keys");
    assert_eq!(mints.len(), 1, "{mints:?}");
    assert!(mints[0].authorized);
    let create = &mints[0].body["capabilities"]["devices"]["create"];
    assert_eq!(create["reusable"], false);
    assert_eq!(create["ephemeral"], true);
    assert_eq!(create["preauthorized"], true);
    assert_eq!(create["tags"], json!(["tag:vessel", "tag:vessel-alice"]));
    assert_eq!(mints[0].body["expirySeconds"], 300);

    // The init ran tailscaled in userspace mode and `up` with the key file.
    let container = format!("vessel-{id}");
    let daemon = docker(&["exec", &container, "cat", "/run/vessel-ts/tailscaled.args"])?;
    assert!(daemon.contains("--tun=userspace-networking"), "{daemon}");
    let up = docker(&["exec", &container, "cat", "/run/vessel-ts/up.args"])?;
    assert!(up.starts_with("--socket=") && up.contains(" up "), "{up}");
    assert!(up.contains("--auth-key=file:/.vessel/ts-authkey"), "{up}");
    // A hostname of this vessel's alone: readable, and ending in its id.
    let hostname = format!("tsv-alice-{}", id.replace('-', ""));
    assert!(up.contains(&format!("--hostname={hostname} ")), "{up}");
    let seen = docker(&["exec", &container, "cat", "/run/vessel-ts/key-seen"])?;
    assert_eq!(
        fake.minted_secrets(),
        vec![seen.trim().to_string()],
        "the minted key reached tailscale up"
    );
    assert!(
        docker(&["exec", &container, "test", "-e", "/.vessel/ts-authkey"]).is_err(),
        "the key file was left behind"
    );
    // The key is nowhere in the database.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM tailnet_devices WHERE key_id = $1)
              + (SELECT count(*) FROM audit_log WHERE detail::text LIKE '%' || $1 || '%')",
    )
    .bind(seen.trim())
    .fetch_one(&rig.db)
    .await?;
    assert_eq!(leaked, 0);

    // The SSH config carries the device's address, and login works there.
    let address = address_on(&rig.network, &container)?;
    assert_eq!(vessel["ssh"]["address"], address.as_str());
    assert!(vessel["ssh"]["config"]
        .as_str()
        .unwrap()
        .contains(&format!("HostName {address}")));
    assert_eq!(rig.ssh(&vessel["ssh"], "id -un")?, "alice");

    // Hibernation is not built for tailnet hosts (the key is single-use, a
    // sleeper could not wake): refused with the reason, nothing changes.
    let (status, body) = rig
        .call(
            reqwest::Method::POST,
            &format!("/v1/vessels/{id}/hibernate"),
            &alice,
            None,
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("tailnet"),
        "{body}"
    );
    assert_eq!(rig.show(&alice, &id).await?["state"], "running");

    // Kill: the device goes from the tailnet now, not at expiry.
    let short_id: String = docker(&["inspect", "-f", "{{.Id}}", &container])?
        .chars()
        .take(12)
        .collect();
    rig.kill(&alice, &id).await?;
    let deletes = fake.calls("DELETE", "/api/v2/device/");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(
        deletes[0].path.ends_with(&format!("n{short_id}")),
        "{deletes:?}"
    );
    assert_eq!(
        fake.calls("DELETE", "/api/v2/tailnet/lab.example/keys/")
            .len(),
        1
    );
    docker(&["rmi", "-f", &image]).ok();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_are_waited_out_and_refusals_fail_cleanly() -> anyhow::Result<()> {
    let fake = FakeTailnet::start().await?;
    let rig = rig_with(&fake, "tailscale").await?;
    let image = stand_in_image(&rig)?;
    let bob = rig.researcher("bob");
    rig.add_key(&bob).await?;

    // 429 with Retry-After: 1, then success.
    fake.fail_key_mints(&[(429, Some(1))]);
    let (_, v) = rig
        .create(
            &bob,
            json!({ "queue": "cpu", "name": "patient", "image": image }),
        )
        .await?;
    let id = v["id"].as_str().unwrap().to_string();
    let vessel = rig
        .wait_state(&bob, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    assert_eq!(vessel["state"], "running", "{vessel}");
    let mints = fake.calls("POST", "/api/v2/tailnet/lab.example/keys");
    assert_eq!(mints.len(), 2);
    assert!(
        mints[1].at.duration_since(mints[0].at) >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    rig.kill(&bob, &id).await?;

    // 403: the vessel fails with the reason and leaves nothing behind.
    fake.fail_key_mints(&[(403, None)]);
    let (_, v) = rig
        .create(
            &bob,
            json!({ "queue": "cpu", "name": "refused", "image": image }),
        )
        .await?;
    let id = v["id"].as_str().unwrap().to_string();
    let failed = rig
        .wait_state(&bob, &id, &["failed", "running"], Duration::from_secs(30))
        .await?;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("refused") && reason.contains("api_key"),
        "{reason}"
    );
    assert!(
        rig.vessel_containers()?.is_empty(),
        "{:?}",
        rig.vessel_containers()?
    );
    let reservations: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(reservations, 0);

    // An image without tailscale fails with that reason.
    let (_, v) = rig
        .create(
            &bob,
            json!({ "queue": "cpu", "name": "plain", "image": VESSEL_IMAGE }),
        )
        .await?;
    let id = v["id"].as_str().unwrap().to_string();
    let failed = rig
        .wait_state(&bob, &id, &["failed", "running"], Duration::from_secs(60))
        .await?;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["reason"].as_str().unwrap().contains("no tailscale"),
        "{failed}"
    );
    assert!(rig.vessel_containers()?.is_empty());
    docker(&["rmi", "-f", &image]).ok();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headscale_mints_pre_auth_keys_and_deletes_nodes() -> anyhow::Result<()> {
    let fake = FakeTailnet::start().await?;
    let rig = rig_with(&fake, "headscale").await?;
    let image = stand_in_image(&rig)?;
    let carol = rig.researcher("carol");
    rig.add_key(&carol).await?;
    let (_, v) = rig
        .create(
            &carol,
            json!({ "queue": "cpu", "name": "hs", "image": image }),
        )
        .await?;
    let id = v["id"].as_str().unwrap().to_string();
    let vessel = rig
        .wait_state(&carol, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    assert_eq!(vessel["state"], "running", "{vessel}");
    let mints = fake.calls("POST", "/api/v1/preauthkey");
    assert_eq!(mints.len(), 1);
    let body = &mints[0].body;
    assert_eq!(body["user"], "vessels");
    assert_eq!(body["reusable"], false);
    assert_eq!(body["ephemeral"], true);
    assert_eq!(body["aclTags"], json!(["tag:vessel", "tag:vessel-carol"]));
    assert!(
        body["expiration"].as_str().unwrap().starts_with("20"),
        "{body}"
    );
    assert_eq!(rig.ssh(&vessel["ssh"], "id -un")?, "carol");
    rig.kill(&carol, &id).await?;
    assert_eq!(fake.calls("DELETE", "/api/v1/node/").len(), 1);
    docker(&["rmi", "-f", &image]).ok();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_that_never_appears_fails_the_vessel_and_cleans_up() -> anyhow::Result<()> {
    let fake = FakeTailnet::start().await?;
    let rig = rig_with_timeout(&fake, "tailscale", "3s").await?;
    // The fake lists no device for this fleet: as if `tailscale up` never
    // reached the control server.
    fake.watch("some-other-fleet", &rig.network);
    let image = stand_in_image(&rig)?;
    let dan = rig.researcher("dan");
    rig.add_key(&dan).await?;
    let (_, v) = rig
        .create(
            &dan,
            json!({ "queue": "cpu", "name": "ghost", "image": image }),
        )
        .await?;
    let id = v["id"].as_str().unwrap().to_string();
    let failed = rig
        .wait_state(&dan, &id, &["failed", "running"], Duration::from_secs(60))
        .await?;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("did not appear on the tailnet"),
        "{failed}"
    );
    assert!(
        rig.vessel_containers()?.is_empty(),
        "{:?}",
        rig.vessel_containers()?
    );
    // The unused key is revoked.
    assert_eq!(
        fake.calls("DELETE", "/api/v2/tailnet/lab.example/keys/")
            .len(),
        1
    );
    docker(&["rmi", "-f", &image]).ok();
    Ok(())
}

/// Someone else's SSH server on the rig's network, with a host key of its
/// own: where an impostor device (or a squatter) answers.
pub async fn attacker_sshd(rig: &Rig) -> anyhow::Result<String> {
    let name = format!("vessel-{}-attacker", rig.id);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &rig.network,
        "--label",
        &format!("vessel.test={}", rig.id),
        "--entrypoint",
        "/bin/sh",
        VESSEL_IMAGE,
        "-c",
        "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && mkdir -p /run/sshd && \
         exec /usr/sbin/sshd -D -e -o HostKey=/etc/ssh/ssh_host_ed25519_key",
    ])?;
    let address = address_on(&rig.network, &name)?;
    eventually("the attacker's sshd", Duration::from_secs(30), || {
        let address = address.clone();
        async move { Ok(ssh_banner(&address).await.then_some(())) }
    })
    .await?;
    Ok(address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn impostor_devices_named_like_a_vessel_are_neither_taken_for_it_nor_deleted(
) -> anyhow::Result<()> {
    let fake = FakeTailnet::start().await?;
    let rig = rig_with(&fake, "tailscale").await?;
    let image = stand_in_image(&rig)?;
    let attacker = attacker_sshd(&rig).await?;
    // Every vessel device is listed after four devices under its hostname,
    // all answering at the attacker's sshd: a member's untagged laptop, a
    // device with other tags, one with the vessel's tags made before the
    // key, and one with them shared in from another tailnet.
    let impostors = [
        Impostor::Untagged,
        Impostor::OtherTags,
        Impostor::Older,
        Impostor::Shared,
    ];
    fake.impersonate_every_device(&impostors, &attacker);
    let erin = rig.researcher("erin");
    rig.add_key(&erin).await?;
    let (status, v) = rig
        .create(
            &erin,
            json!({ "queue": "cpu", "name": "target", "image": image }),
        )
        .await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let vessel = rig
        .wait_state(&erin, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    assert_eq!(vessel["state"], "running", "{vessel}");

    // The vessel is where its own container is, not at the attacker's.
    let container = format!("vessel-{id}");
    let address = address_on(&rig.network, &container)?;
    assert_eq!(vessel["ssh"]["address"], address.as_str(), "{vessel}");
    assert_ne!(address, attacker);
    assert_eq!(rig.ssh(&vessel["ssh"], "id -un")?, "erin");

    // Kill deletes the vessel's own device and nothing else.
    rig.kill(&erin, &id).await?;
    let deletes = fake.calls("DELETE", "/api/v2/device/");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(
        !deletes[0].path.contains("impostor"),
        "an impostor was deleted: {deletes:?}"
    );
    docker(&["rmi", "-f", &image]).ok();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_address_answered_by_another_host_key_never_makes_the_vessel_ready(
) -> anyhow::Result<()> {
    let fake = FakeTailnet::start().await?;
    let rig = rig_with(&fake, "tailscale").await?;
    let image = stand_in_image(&rig)?;
    let attacker = attacker_sshd(&rig).await?;
    // The device list sends the orchestrator to the attacker's sshd.
    fake.misroute_every_device_to(&attacker);
    let fay = rig.researcher("fay");
    rig.add_key(&fay).await?;
    let (_, v) = rig
        .create(
            &fay,
            json!({ "queue": "cpu", "name": "target", "image": image }),
        )
        .await?;
    let id = v["id"].as_str().unwrap().to_string();
    let vessel = rig
        .wait_state(&fay, &id, &["running", "failed"], Duration::from_secs(60))
        .await?;
    assert_eq!(
        vessel["state"], "failed",
        "ready at an address that proved another host key: {vessel}"
    );
    let reason = vessel["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&attacker) && reason.contains("host key"),
        "{reason}"
    );
    assert!(rig.vessel_containers()?.is_empty());
    docker(&["rmi", "-f", &image]).ok();
    Ok(())
}
