//! Homes outlive vessels, so the identity that owns one must never pass to
//! someone else: a unix name or uid once given to a researcher is never
//! given to another, and the init never hands a home full of another uid's
//! files to the vessel's user.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};
use vessel_orchestrator::api::auth::perm;

use crate::rig::{cpu_host, Rig};

async fn me(rig: &Rig, token: &str) -> anyhow::Result<Value> {
    let (status, me) = rig.call(Method::GET, "/v1/me", token, None).await?;
    anyhow::ensure!(status == 200, "GET /v1/me: {status} {me}");
    Ok(me)
}

async fn set_user(rig: &Rig, subject: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let admin = rig.token("root-admin", &[perm::FLEET_MANAGE]);
    rig.call(
        Method::PUT,
        &format!("/v1/users/{subject}"),
        &admin,
        Some(body),
    )
    .await
}

fn owner(path: &Path) -> anyhow::Result<u32> {
    Ok(std::fs::metadata(path)?.uid())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newcomer_given_a_renamed_users_old_name_or_uid_cannot_take_over_their_home(
) -> anyhow::Result<()> {
    let rig = Rig::start(&[cpu_host("cpu-1")]).await?;
    let homes = rig.dir.join("homes").join("cpu-1");

    // Alice leaves notes in her home, and her vessel ends.
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let vessel = rig.launch(&alice, json!({ "queue": "cpu" })).await?;
    rig.ssh(&vessel["ssh"], "echo 'alice private notes' > ~/notes")?;
    rig.kill(&alice, vessel["id"].as_str().unwrap()).await?;
    let alice_uid = me(&rig, &alice).await?["uid"].as_u64().unwrap() as u32;
    let notes = homes.join("alice").join("notes");
    assert_eq!(owner(&notes)?, alice_uid);

    // An admin renames her and gives her another uid.
    let (status, body) = set_user(
        &rig,
        "alice",
        json!({ "unix_name": "alice-old", "uid": 30000 }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");

    // A newcomer whose subject derives to `alice` does not get that name...
    let newcomer_subject = "alice@elsewhere.example";
    let newcomer = rig.researcher(newcomer_subject);
    rig.add_key(&newcomer).await?;
    let their = me(&rig, &newcomer).await?;
    assert_ne!(their["unix_name"], "alice", "{their}");
    assert_ne!(their["uid"], alice_uid, "{their}");

    // ...nor can an admin give it, or Alice's old uid, to them.
    let (status, body) = set_user(&rig, newcomer_subject, json!({ "unix_name": "alice" })).await?;
    assert_eq!(status, 409, "the old name went to a newcomer: {body}");
    assert_eq!(body["error"], "identity_taken", "{body}");
    let (status, body) = set_user(
        &rig,
        newcomer_subject,
        json!({ "unix_name": "newcomer", "uid": alice_uid }),
    )
    .await?;
    assert_eq!(status, 409, "the old uid went to a newcomer: {body}");

    // Their vessel has a home of its own; Alice's files are as she left them.
    let vessel = rig.launch(&newcomer, json!({ "queue": "cpu" })).await?;
    let out = rig.ssh(
        &vessel["ssh"],
        "cat /home/alice/notes 2>/dev/null || echo unreadable",
    )?;
    assert_eq!(out, "unreadable");
    assert_eq!(owner(&notes)?, alice_uid);
    assert_eq!(owner(&homes.join("alice"))?, alice_uid);
    assert_eq!(
        std::fs::read_to_string(&notes)?.trim(),
        "alice private notes"
    );

    // Alice herself may have her old name back: it was always hers.
    let (status, body) = set_user(
        &rig,
        "alice",
        json!({ "unix_name": "alice", "uid": alice_uid }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_home_holding_another_uids_files_is_not_handed_to_the_vessels_user() -> anyhow::Result<()>
{
    let rig = Rig::start(&[cpu_host("cpu-1")]).await?;
    // A home left by someone the orchestrator no longer knows as `carol`
    // (an older install, a restored database, an admin's uid change).
    let home = rig.dir.join("homes").join("cpu-1").join("carol");
    std::fs::create_dir_all(&home)?;
    let secret = home.join("thesis.tex");
    std::fs::write(&secret, "someone else's thesis")?;
    std::os::unix::fs::chown(&home, Some(12345), Some(12345))?;
    std::os::unix::fs::chown(&secret, Some(12345), Some(12345))?;

    let carol = rig.researcher("carol");
    rig.add_key(&carol).await?;
    let (status, v) = rig.create(&carol, json!({ "queue": "cpu" })).await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    let vessel = rig
        .wait_state(
            &carol,
            id,
            &["running", "failed"],
            std::time::Duration::from_secs(60),
        )
        .await?;
    assert_eq!(
        vessel["state"], "failed",
        "the vessel ran in someone else's home"
    );
    let reason = vessel["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("refusing /home/carol") && reason.contains("uid 12345"),
        "{reason}"
    );
    assert_eq!(owner(&home)?, 12345, "the home was handed over");
    assert_eq!(owner(&secret)?, 12345);
    Ok(())
}
