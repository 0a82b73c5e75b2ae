//! The bot stopped as a service manager stops it: SIGTERM ends the process
//! promptly with status 0, and a waiting DM's edit that the throttle had
//! deferred is sent first instead of dying with the process (its event is
//! already behind the cursor, so no restart would send it).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::fake_slack::{text_of, FakeSlack};
use crate::rig::{binary, bot_auth_toml, eventually, gpu_host, Options, Rig};

const WAIT: Duration = Duration::from_secs(30);

/// The bot binary serving Slack over HTTP against the fake, its log in
/// `log`.
fn spawn_bot(rig: &Rig, slack: &FakeSlack, log: &Path) -> anyhow::Result<Child> {
    let config = rig.dir.join("vessel-bot.toml");
    std::fs::write(
        &config,
        format!(
            r#"orchestrator_url = "{orch}"
{auth}
[slack]
listen = "127.0.0.1:0"
signing_secret = "bot-shutdown-test"
bot_token = "xoxb-test-token"
api_url = "{api}"
team_id = "T0LAB"
"#,
            orch = rig.url(""),
            api = slack.api_url(),
            auth = bot_auth_toml(),
        ),
    )?;
    Ok(Command::new(binary("vessel-bot")?)
        .args(["--config", &config.display().to_string(), "serve"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()?)
}

/// A researcher with a key, and a create in the 3090 queue as them.
async fn create(rig: &Rig, user: &str, gpus: u32) -> anyhow::Result<(String, Value)> {
    let token = rig.researcher(user);
    rig.add_key(&token).await?;
    let (status, v) = rig
        .create(
            &token,
            json!({ "queue": "3090", "gpus": gpus, "cpus": 1, "memory": "256M" }),
        )
        .await?;
    anyhow::ensure!(status == 202, "create for {user}: {status} {v}");
    Ok((token, v))
}

/// Whether the bot's saved cursor has delivered event `id`.
async fn delivered(rig: &Rig, id: i64) -> anyhow::Result<bool> {
    let cursor: Option<Value> =
        sqlx::query_scalar("SELECT value FROM bot_state WHERE key = 'slack-cursor'")
            .fetch_optional(&rig.db)
            .await?;
    let Some(cursor) = cursor else {
        return Ok(false);
    };
    let safe = cursor["safe"].as_i64().unwrap_or(0);
    let seen = cursor["seen"].as_array().cloned().unwrap_or_default();
    Ok(safe >= id || seen.iter().any(|s| s.as_i64() == Some(id)))
}

/// The edits of `user`'s DMs that say `says`.
fn edits_to(slack: &FakeSlack, user: &str, says: &str) -> Vec<Value> {
    slack
        .calls("chat.update")
        .into_iter()
        .map(|c| c.body)
        .filter(|b| b["channel"] == format!("D{user}") && text_of(b).contains(says))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigterm_sends_the_deferred_dm_edit_then_exits_cleanly() -> anyhow::Result<()> {
    // No conductor workers: Alice's vessel holds both GPUs while it stays
    // provisioning, so Bob and Carol wait.
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let slack = FakeSlack::start().await?;
    let log = rig.dir.join("vessel-bot.log");
    let mut bot = spawn_bot(&rig, &slack, &log)?;
    let log = log.display();

    create(&rig, "UALICE", 2).await?;
    let (bob, wide) = create(&rig, "UBOB", 1).await?;
    let (_, small) = create(&rig, "UCAROL", 1).await?;
    anyhow::ensure!(small["state"] == "pending", "Carol does not wait: {small}");
    let small_id = small["id"].as_str().context("id")?.to_string();
    slack
        .wait_for("chat.postMessage", WAIT, |b| {
            b["channel"] == "DUCAROL" && text_of(b).contains("#2 of 2")
        })
        .await
        .with_context(|| format!("Carol's waiting DM; the bot's log: {log}"))?;

    // Bob leaves the line: Carol moves up, within 3 s of her DM's post, so
    // the throttle defers that edit.
    let wide_id = wide["id"].as_str().context("id")?;
    let (status, body) = rig
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/vessels/{wide_id}"),
            &bob,
            None,
        )
        .await?;
    anyhow::ensure!(status == 202 || status == 200, "cancel: {status} {body}");
    let moved: i64 = eventually("Carol's move in the outbox", WAIT, || async {
        Ok(sqlx::query_scalar(
            "SELECT max(id) FROM events WHERE kind = 'vessel.queued' AND vessel_id::text = $1",
        )
        .bind(&small_id)
        .fetch_one(&rig.db)
        .await?)
    })
    .await?;
    eventually("the bot to take the move in", WAIT, || async {
        Ok(delivered(&rig, moved).await?.then_some(()))
    })
    .await?;
    assert!(
        edits_to(&slack, "UCAROL", "#1 of 1").is_empty(),
        "the edit went out before the signal (was the bot over 3 s late?): \
         nothing left to test; the bot's log: {log}"
    );

    let pid = bot.id().context("the bot has already exited")?;
    let sent = Instant::now();
    crate::rig::run("kill", &["-TERM", &pid.to_string()])?;
    let status = tokio::time::timeout(Duration::from_secs(10), bot.wait())
        .await
        .with_context(|| {
            format!("the bot did not exit within 10 s of SIGTERM; its log: {log}")
        })??;
    let took = sent.elapsed();
    assert!(
        status.success(),
        "the bot exited with {status}; its log: {log}"
    );
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    // The deferred edit was sent before the process ended, not dropped.
    let sent_edits = edits_to(&slack, "UCAROL", "#1 of 1");
    assert_eq!(
        sent_edits.len(),
        1,
        "Carol's waiting DM does not show her new place; the bot's log: {log}"
    );
    Ok(())
}
