//! The waiting line's Slack side end to end: a create that does not fit is
//! answered with its place, the place lives in one DM that is edited (never
//! re-posted) as it moves, admins see and reorder the line, Cancel leaves
//! it, and a kill places the head, whose DM carries an SSH config that
//! logs in.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_slack::text_of;
use crate::rig::Options;
use crate::slack::{access_from_dm, button, now, SlackRig};

/// A button press on a message, as Slack sends it after any confirm dialog.
fn press(s: &SlackRig, user: &str, action_id: &str, value: &Value) -> Value {
    json!({
        "type": "block_actions",
        "api_app_id": "A0VESSEL",
        "user": { "id": user, "username": user.to_ascii_lowercase(), "team_id": "T0LAB" },
        "team": { "id": "T0LAB" },
        "channel": { "id": format!("D{user}") },
        "container": { "type": "message", "message_ts": "1700000000.000002", "channel_id": format!("D{user}") },
        "message": { "ts": "1700000000.000002" },
        "response_url": s.slack.response_url(),
        "trigger_id": "1.2.3",
        "actions": [{ "type": "button", "action_id": action_id, "block_id": "b", "value": value, "action_ts": "1" }],
    })
}

/// The DMs posted to `user` whose text contains `says`.
fn posts_to(s: &SlackRig, user: &str, says: &str) -> Vec<Value> {
    s.slack
        .calls("chat.postMessage")
        .into_iter()
        .map(|c| c.body)
        .filter(|b| b["channel"] == format!("D{user}") && text_of(b).contains(says))
        .collect()
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_keeps_your_place_in_one_dm_and_a_kill_places_the_head() -> anyhow::Result<()>
{
    let s = SlackRig::start(&["UBOSS"]).await?;
    // Before her first command: the unix name is taken on first sight.
    s.slack.set_name("UCAROL", "carol");
    for user in ["UALICE", "UBOB", "UCAROL", "UDAN"] {
        s.add_key(user).await?;
    }

    // Alice takes every GPU of the 3090 queue.
    let (_, ack) = s
        .slash("UALICE", "/vessel", "create gpu=4 queue=3090 name=big")
        .await?;
    assert!(text_of(&ack).contains("Provisioning big"), "{ack}");
    s.slack
        .wait_for("chat.postMessage", Duration::from_secs(60), |b| {
            b["channel"] == "DUALICE" && text_of(b).contains("big is running")
        })
        .await?;

    // A script that will not wait is told at once, and nothing waits.
    let (status, ack) = s
        .slash(
            "UDAN",
            "/vessel",
            "create gpu=1 queue=3090 name=eager --no-wait",
        )
        .await?;
    assert_eq!(status, 200);
    assert!(text_of(&ack).contains("leave out `--no-wait`"), "{ack}");
    let (_, list) = s.slash("UDAN", "/vessel", "queue").await?;
    assert!(
        text_of(&list).contains("Nothing of yours is waiting"),
        "{list}"
    );

    // Bob and Carol wait, in the order they asked.
    let (status, ack) = s
        .slash("UBOB", "/vessel", "create gpu=4 queue=3090 name=wide")
        .await?;
    assert_eq!(status, 200);
    let said = text_of(&ack);
    assert!(said.contains("Queued wide, #1 in line for 3090"), "{ack}");
    assert!(said.contains("A DM follows"), "{ack}");
    let (_, ack) = s
        .slash("UCAROL", "/vessel", "create gpu=1 queue=3090 name=small")
        .await?;
    assert!(
        text_of(&ack).contains("Queued small, #2 in line for 3090"),
        "{ack}"
    );
    let bob_dm = s
        .slack
        .wait_for("chat.postMessage", WAIT, |b| {
            b["channel"] == "DUBOB" && text_of(b).contains("wide is waiting")
        })
        .await?;
    assert!(text_of(&bob_dm.body).contains("#1 of"), "{}", bob_dm.body);
    let carol_dm = s
        .slack
        .wait_for("chat.postMessage", WAIT, |b| {
            b["channel"] == "DUCAROL" && text_of(b).contains("small is waiting")
        })
        .await?;
    assert!(
        text_of(&carol_dm.body).contains("#2 of 2"),
        "{}",
        carol_dm.body
    );

    // Carol sees her place; the admins see the whole line and its counts.
    let (_, mine) = s.slash("UCAROL", "/vessel", "queue").await?;
    assert!(
        text_of(&mine).contains("#2 of 2 in line for `3090`"),
        "{mine}"
    );
    button(&mine, "vessel.cancel");
    // Her App Home lists it too, with its Cancel.
    let opened = json!({
        "type": "event_callback", "team_id": "T0LAB", "api_app_id": "A0VESSEL",
        "event_id": "Ev0LINE1", "event_time": now(),
        "event": { "type": "app_home_opened", "user": "UCAROL", "channel": "DUCAROL", "tab": "home",
                   "event_ts": "1700000000.000001" },
    });
    let (status, _) = s
        .post_signed(
            "/slack/events",
            "application/json",
            opened.to_string(),
            now(),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let home = s
        .slack
        .wait_for("views.publish", WAIT, |b| b["user_id"] == "UCAROL")
        .await?;
    let home = home.body["view"].to_string();
    assert!(
        home.contains("Waiting in line")
            && home.contains("#2 of 2")
            && home.contains("vessel.cancel"),
        "{home}"
    );
    let (_, status_msg) = s.slash("UBOSS", "/fleet", "status").await?;
    assert!(text_of(&status_msg).contains("2 waiting"), "{status_msg}");
    let (_, line) = s.slash("UBOSS", "/fleet", "queue").await?;
    let shown = text_of(&line);
    assert!(
        shown.contains("*wide* of ubob") && shown.contains("*small* of carol"),
        "{line}"
    );
    let (_, refused) = s.slash("UCAROL", "/fleet", "queue").await?;
    assert!(text_of(&refused).contains("Sorry"), "{refused}");
    // Admins set a person's limits in a queue; `none` is the queue's own.
    let (_, limited) = s
        .slash(
            "UBOSS",
            "/fleet",
            "limit <@UDAN|dan> queue=3090 gpus=2 vessels=none",
        )
        .await?;
    assert!(
        text_of(&limited).contains("at most 2 GPUs, no limit on vessels (an admin's override)"),
        "{limited}"
    );
    let (_, refused) = s
        .slash("UDAN", "/fleet", "limit <@UDAN|dan> queue=3090 gpus=64")
        .await?;
    assert!(text_of(&refused).contains("Sorry"), "{refused}");

    // The admin moves Carol's small request to the front: her DM is edited
    // to say so, not posted again.
    let front = button(&line, "line.front");
    let (status, _) = s
        .interact(press(&s, "UBOSS", "line.front", &front["value"]))
        .await?;
    assert_eq!(status, 200);
    let moved = s
        .slack
        .wait_for("chat.update", WAIT, |b| {
            b["channel"] == "DUCAROL" && text_of(b).contains("#1 of 2")
        })
        .await?;
    s.slack
        .wait_for("chat.update", WAIT, |b| {
            b["channel"] == "DUBOB" && text_of(b).contains("#2 of 2")
        })
        .await?;

    // Bob gives up, with the Cancel button on his waiting DM.
    let cancel = button(&bob_dm.body, "vessel.cancel");
    assert!(cancel["confirm"].is_object(), "Cancel must ask to confirm");
    let (status, _) = s
        .interact(press(&s, "UBOB", "vessel.cancel", &cancel["value"]))
        .await?;
    assert_eq!(status, 200);
    s.slack
        .wait_for("response_url", WAIT, |b| text_of(b).contains("Cancelling"))
        .await?;
    s.slack
        .wait_for("chat.update", WAIT, |b| {
            b["channel"] == "DUBOB" && text_of(b).contains("wide was cancelled")
        })
        .await?;

    // Alice is done: the head of the line, Carol's request, is placed.
    let (_, killed) = s.slash("UALICE", "/vessel", "kill big").await?;
    assert!(text_of(&killed).contains("Killing"), "{killed}");
    let running = s
        .slack
        .wait_for("chat.postMessage", Duration::from_secs(90), |b| {
            b["channel"] == "DUCAROL" && text_of(b).contains("small is running")
        })
        .await?;
    let access = access_from_dm(&running.body, "small");
    let out = s
        .rig
        .ssh(&access, "id -un; nproc; echo \"$NVIDIA_VISIBLE_DEVICES\"")?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "carol", "{out}");
    assert_eq!(lines[1], "1", "{out}");
    assert!(
        lines[2].starts_with("GPU-") && !lines[2].contains(','),
        "one GPU: {out}"
    );
    let placed = s
        .slack
        .wait_for("chat.update", WAIT, |b| {
            b["channel"] == "DUCAROL" && text_of(b).contains("small was placed on gpu-1")
        })
        .await?;

    // One waiting DM for Carol, edited in place: every edit names it.
    assert_eq!(
        posts_to(&s, "UCAROL", "small is waiting").len(),
        1,
        "the waiting DM was posted again"
    );
    assert_eq!(
        moved.body["ts"], placed.body["ts"],
        "two different messages were edited"
    );
    let edits: Vec<Value> = s
        .slack
        .calls("chat.update")
        .into_iter()
        .map(|c| c.body)
        .filter(|b| b["channel"] == "DUCAROL")
        .collect();
    assert!(
        edits.iter().all(|b| b["ts"] == placed.body["ts"]),
        "{edits:?}"
    );
    let (_, mine) = s.slash("UCAROL", "/vessel", "queue").await?;
    assert!(
        text_of(&mine).contains("Nothing of yours is waiting"),
        "{mine}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_waits_too_long_is_told_it_expired() -> anyhow::Result<()> {
    // No conductor workers: Alice's vessel holds the GPUs while it stays
    // provisioning, which is all this test needs.
    let s = SlackRig::start_with(
        &[],
        Options {
            workers: 0,
            queue_3090: "max_wait = \"4s\"".into(),
            ..Options::default()
        },
    )
    .await?;
    for user in ["UALICE", "UBOB"] {
        s.add_key(user).await?;
    }
    let (_, ack) = s
        .slash("UALICE", "/vessel", "create gpu=4 queue=3090 name=big")
        .await?;
    assert!(text_of(&ack).contains("Provisioning big"), "{ack}");
    let (_, ack) = s
        .slash("UBOB", "/vessel", "create gpu=1 queue=3090 name=patient")
        .await?;
    assert!(
        text_of(&ack).contains("Queued patient, #1 in line for 3090"),
        "{ack}"
    );
    s.slack
        .wait_for("chat.postMessage", WAIT, |b| {
            b["channel"] == "DUBOB" && text_of(b).contains("patient is waiting")
        })
        .await?;

    // The waiting DM says how it ended, and a new DM tells Bob (an edit
    // does not notify).
    s.slack
        .wait_for("chat.update", WAIT, |b| {
            b["channel"] == "DUBOB" && text_of(b).contains("patient expired after waiting")
        })
        .await?;
    let told = s
        .slack
        .wait_for("chat.postMessage", WAIT, |b| {
            b["channel"] == "DUBOB" && text_of(b).contains("and expired; nothing was started")
        })
        .await?;
    assert!(
        text_of(&told.body).contains("/vessel create queue=3090 gpu=1"),
        "{}",
        told.body
    );
    assert_eq!(posts_to(&s, "UBOB", "patient is waiting").len(), 1);
    let (_, mine) = s.slash("UBOB", "/vessel", "queue").await?;
    assert!(
        text_of(&mine).contains("Nothing of yours is waiting"),
        "{mine}"
    );
    Ok(())
}
