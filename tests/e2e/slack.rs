//! The Slack surface end to end: requests signed exactly as Slack signs
//! them go into the bot; the bot talks to a fake Slack Web API and the real
//! orchestrator; the test reads the DM, logs in with it, and presses buttons.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use vessel_bot::config::BotConfig;
use vessel_bot::slack::signature::sign;
use vessel_bot::startup::RunningBot;

use crate::fake_slack::{text_of, FakeSlack};
use crate::rig::{
    bot_auth_toml, cpu_host, docker, eventually, gpu_host, Options, Rig, SERVICE_KEY_SECRET,
};

const SIGNING: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A rig with the bot serving Slack over HTTP against the fake; the line's
/// Slack tests (`line_slack.rs`) use it too.
pub(crate) struct SlackRig {
    pub(crate) rig: Rig,
    pub(crate) slack: FakeSlack,
    bot: Option<RunningBot>,
    admins: Vec<String>,
    http: reqwest::Client,
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl SlackRig {
    pub(crate) async fn start(admins: &[&str]) -> anyhow::Result<SlackRig> {
        SlackRig::start_with(admins, Options::default()).await
    }

    /// With the orchestrator's rig options (workers, the 3090 queue's line
    /// settings).
    pub(crate) async fn start_with(admins: &[&str], options: Options) -> anyhow::Result<SlackRig> {
        SlackRig::start_on(
            &[gpu_host("gpu-1", 4, "3090"), cpu_host("cpu-1")],
            admins,
            options,
        )
        .await
    }

    /// On hosts of the test's choosing.
    pub(crate) async fn start_on(
        hosts: &[crate::rig::HostDecl],
        admins: &[&str],
        options: Options,
    ) -> anyhow::Result<SlackRig> {
        let rig = Rig::start_with(hosts, options).await?;
        let slack = FakeSlack::start().await?;
        let mut s = SlackRig {
            rig,
            slack,
            bot: None,
            admins: admins.iter().map(|a| a.to_string()).collect(),
            http: reqwest::Client::new(),
        };
        s.start_bot().await?;
        Ok(s)
    }

    fn config(&self) -> anyhow::Result<BotConfig> {
        let admins: Vec<String> = self.admins.iter().map(|a| format!("\"{a}\"")).collect();
        Ok(BotConfig::from_toml_str(&format!(
            r#"
orchestrator_url = "{orch}"
{auth}
[slack]
listen = "127.0.0.1:0"
signing_secret = "{SIGNING}"
bot_token = "xoxb-test-token"
api_url = "{api}"
admins = [{admins}]
admin_channel = "CADMINS"
team_id = "T0LAB"
"#,
            orch = self.rig.url(""),
            api = self.slack.api_url(),
            admins = admins.join(", "),
            auth = bot_auth_toml(),
        ))?)
    }

    async fn start_bot(&mut self) -> anyhow::Result<()> {
        self.bot = Some(vessel_bot::startup::start(self.config()?).await?);
        Ok(())
    }

    fn stop_bot(&mut self) {
        self.bot = None;
    }

    fn bot_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.bot.as_ref().unwrap().addr.unwrap())
    }

    pub(crate) async fn post_signed(
        &self,
        path: &str,
        content_type: &str,
        body: String,
        timestamp: i64,
        signature: Option<String>,
    ) -> anyhow::Result<(u16, Value)> {
        let ts = timestamp.to_string();
        let signature = signature.unwrap_or_else(|| sign(SIGNING.as_bytes(), &ts, body.as_bytes()));
        let resp = self
            .http
            .post(self.bot_url(path))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    fn slash_body(&self, user: &str, command: &str, text: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", "deprecated-verification-token")
            .append_pair("team_id", "T0LAB")
            .append_pair("channel_id", "C0GENERAL")
            .append_pair("user_id", user)
            .append_pair("command", command)
            .append_pair("text", text)
            .append_pair("response_url", &self.slack.response_url())
            .append_pair("trigger_id", "13345224609.738474920.8088930838d88f008e0")
            .finish()
    }

    pub(crate) async fn slash(
        &self,
        user: &str,
        command: &str,
        text: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let body = self.slash_body(user, command, text);
        self.post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body,
            now(),
            None,
        )
        .await
    }

    pub(crate) async fn interact(&self, payload: Value) -> anyhow::Result<(u16, Value)> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        self.post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body,
            now(),
            None,
        )
        .await
    }

    pub(crate) async fn add_key(&self, user: &str) -> anyhow::Result<()> {
        let key = std::fs::read_to_string(self.rig.user_key.with_extension("pub"))?;
        let (status, body) = self
            .slash(user, "/vessel", &format!("keys add {}", key.trim()))
            .await?;
        assert_eq!(status, 200, "{body}");
        assert!(body["text"].as_str().unwrap().contains("added"), "{body}");
        Ok(())
    }

    async fn vessels_in_db(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM vessels")
            .fetch_one(&self.rig.db)
            .await?)
    }
}

/// The SSH config and known_hosts line from a running DM's code blocks.
pub(crate) fn access_from_dm(body: &Value, alias: &str) -> Value {
    let code: Vec<String> = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .filter(|t| t.starts_with("```"))
        .map(|t| t.trim_matches('`').to_string())
        .collect();
    let config = code
        .iter()
        .find(|c| c.starts_with("Host "))
        .expect("config block");
    let known = code
        .iter()
        .find(|c| c.contains("ssh-ed25519"))
        .expect("known_hosts block");
    json!({ "host_alias": alias, "config": config, "known_hosts": known })
}

pub(crate) fn button(body: &Value, action_id: &str) -> Value {
    body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .find(|e| e["action_id"] == action_id)
        .unwrap_or_else(|| panic!("no {action_id} button in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slash_command_becomes_a_dm_you_can_ssh_with_and_kill_updates_it() -> anyhow::Result<()> {
    let s = SlackRig::start(&[]).await?;
    s.slack.set_name("UALICE", "alice");
    s.add_key("UALICE").await?;

    let asked = Instant::now();
    let (status, ack) = s
        .slash("UALICE", "/vessel", "create gpu=1 queue=3090 name=train")
        .await?;
    let ack_ms = asked.elapsed().as_millis();
    println!("slash command acknowledged in {ack_ms} ms");
    assert_eq!(status, 200);
    assert_eq!(ack["response_type"], "ephemeral");
    assert!(
        ack["text"].as_str().unwrap().contains("Provisioning train"),
        "{ack}"
    );
    assert!(ack_ms < 3000, "Slack gives up after 3 s");

    let dm = s
        .slack
        .wait_for("chat.postMessage", Duration::from_secs(60), |b| {
            b["channel"] == "DUALICE" && text_of(b).contains("train is running")
        })
        .await?;
    let access = access_from_dm(&dm.body, "train");
    let out = s
        .rig
        .ssh(&access, "id -un; nproc; echo \"$NVIDIA_VISIBLE_DEVICES\"")?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "alice", "the unix name comes from Slack: {out}");
    assert_eq!(lines[1], "1");
    assert!(
        lines[2].starts_with("GPU-") && !lines[2].contains(','),
        "{out}"
    );
    assert!(text_of(&dm.body).contains("vscode://vscode-remote/ssh-remote+train/home/alice"));

    // Kill, as the button (the confirm dialog is Slack's; the press arrives after it).
    let kill = button(&dm.body, "vessel.kill");
    assert!(kill["confirm"].is_object(), "Kill must ask to confirm");
    let (status, _) = s
        .interact(json!({
            "type": "block_actions",
            "api_app_id": "A0VESSEL",
            "user": { "id": "UALICE", "username": "alice", "team_id": "T0LAB" },
            "team": { "id": "T0LAB" },
            "channel": { "id": "DUALICE" },
            // A ts in Slack's shape; the bot does not read which message held the button.
            "container": { "type": "message", "message_ts": "1700000000.000002", "channel_id": "DUALICE" },
            "message": { "ts": "1700000000.000002" },
            "response_url": s.slack.response_url(),
            "trigger_id": "1.2.3",
            "actions": [{ "type": "button", "action_id": "vessel.kill", "block_id": "b", "value": kill["value"], "action_ts": "1" }],
        }))
        .await?;
    assert_eq!(status, 200);
    s.slack
        .wait_for("chat.update", Duration::from_secs(30), |b| {
            b["channel"] == "DUALICE" && text_of(b).contains("was buried")
        })
        .await?;
    let id = kill["value"].as_str().unwrap();
    assert!(
        docker(&["inspect", &format!("vessel-{id}")]).is_err(),
        "container still there"
    );
    // The press was answered to the user too.
    s.slack
        .wait_for("response_url", Duration::from_secs(10), |b| {
            text_of(b).contains("Killing")
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_create_modal_shows_field_errors_then_creates() -> anyhow::Result<()> {
    let s = SlackRig::start(&[]).await?;
    s.add_key("UBOB").await?;
    let (status, body) = s.slash("UBOB", "/vessel", "create").await?;
    assert_eq!(status, 200, "{body}");
    let open = s
        .slack
        .wait_for("views.open", Duration::from_secs(10), |_| true)
        .await?;
    let view = &open.body["view"];
    assert_eq!(view["callback_id"], "vessel.create");
    assert!(
        view.to_string().contains("3090 — 4 of 4 GPUs free"),
        "{view}"
    );

    let submit = |values: Value| {
        json!({
            "type": "view_submission",
            "user": { "id": "UBOB" },
            "team": { "id": "T0LAB" },
            "view": {
                "type": "modal", "id": "V1", "team_id": "T0LAB", "hash": "1700000000.000001",
                "callback_id": "vessel.create", "title": view["title"], "blocks": view["blocks"],
                "state": { "values": values },
            },
        })
    };
    let select = |v: &str| {
        json!({ "value": { "type": "static_select", "selected_option": {
            "text": { "type": "plain_text", "text": v, "emoji": true }, "value": v } } })
    };
    let text = |v: &str| json!({ "value": { "type": "plain_text_input", "value": v } });

    let (status, answer) = s
        .interact(submit(
            json!({ "queue": select("3090"), "gpu": text("two"), "mem": text("lots") }),
        ))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert!(answer["errors"]["gpu"]
        .as_str()
        .unwrap()
        .contains("whole number"));
    assert!(answer["errors"]["mem"]
        .as_str()
        .unwrap()
        .contains("not a size"));
    assert_eq!(s.vessels_in_db().await?, 0, "a bad form created something");

    // More than any host of the queue could hold: the orchestrator's
    // reason lands on its field.
    let (_, answer) = s
        .interact(submit(json!({ "queue": select("3090"), "gpu": text("9") })))
        .await?;
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert!(
        answer["errors"]["gpu"]
            .as_str()
            .unwrap()
            .contains("could ever hold"),
        "{answer}"
    );

    let (status, answer) = s
        .interact(submit(
            json!({ "queue": select("3090"), "gpu": text("1"), "name": text("form") }),
        ))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(answer["response_action"], "clear", "{answer}");
    s.slack
        .wait_for("chat.postMessage", Duration::from_secs(60), |b| {
            b["channel"] == "DUBOB" && text_of(b).contains("form is running")
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_stale_replayed_and_unauthorised_requests_change_nothing() -> anyhow::Result<()> {
    let s = SlackRig::start(&["UBOSS"]).await?;
    s.add_key("UEVE").await?;
    let body = s.slash_body("UEVE", "/vessel", "create queue=cpu");

    // Another workspace the app is installed in: correctly signed (one app,
    // one signing secret), refused, nothing created.
    let creates = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM audit_log WHERE actor = 'UEVE' AND action = 'vessel.create'",
        )
        .fetch_one(&s.rig.db)
        .await
    };
    let before = creates().await?;
    let elsewhere = body.replace("team_id=T0LAB", "team_id=T0EVIL");
    let (status, answer) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            elsewhere,
            now(),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.to_string().contains("another Slack workspace"),
        "{answer}"
    );
    assert_eq!(
        creates().await?,
        before,
        "another workspace created a vessel"
    );

    // Forged: signed with another secret.
    let ts = now();
    let forged = sign(b"not-the-secret", &ts.to_string(), body.as_bytes());
    let (status, _) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body.clone(),
            ts,
            Some(forged),
        )
        .await?;
    assert_eq!(status, 401);
    // Stale: six minutes old, correctly signed.
    let (status, _) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body.clone(),
            ts - 360,
            None,
        )
        .await?;
    assert_eq!(status, 401);
    // Unsigned.
    let resp = s
        .http
        .post(s.bot_url("/slack/commands"))
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    assert_eq!(s.vessels_in_db().await?, 0);

    // Genuine, then the very same request replayed inside the window.
    let ts = now();
    let sig = sign(SIGNING.as_bytes(), &ts.to_string(), body.as_bytes());
    let (status, ack) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body.clone(),
            ts,
            Some(sig.clone()),
        )
        .await?;
    assert_eq!(status, 200, "{ack}");
    let (status, _) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body,
            ts,
            Some(sig),
        )
        .await?;
    assert_eq!(status, 401, "a replay was accepted");
    assert_eq!(
        s.vessels_in_db().await?,
        1,
        "the replay created a second vessel"
    );

    // Malformed payloads.
    let (status, _) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            "text=hi".into(),
            now(),
            None,
        )
        .await?;
    assert_eq!(status, 400);
    let (status, _) = s
        .post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            "payload=%7Bnope".into(),
            now(),
            None,
        )
        .await?;
    assert_eq!(status, 400);

    // The parser is kind.
    let (_, answer) = s.slash("UEVE", "/vessel", "create gpus=2").await?;
    let shown = text_of(&answer);
    assert!(shown.contains("did you mean `gpu`"), "{answer}");
    assert!(shown.contains("Usage"), "{answer}");

    // /fleet is for admins: Eve is refused and the host stays as it was.
    let (_, answer) = s.slash("UEVE", "/fleet", "drain gpu-1").await?;
    assert!(text_of(&answer).contains("Sorry"), "{answer}");
    let host_state = || async {
        sqlx::query_scalar::<_, String>("SELECT state FROM hosts WHERE name = 'gpu-1'")
            .fetch_one(&s.rig.db)
            .await
    };
    assert_eq!(host_state().await?, "active");
    let (_, answer) = s.slash("UBOSS", "/fleet", "drain gpu-1").await?;
    assert!(text_of(&answer).contains("draining"), "{answer}");
    assert_eq!(host_state().await?, "draining");
    s.slack
        .wait_for("chat.postMessage", Duration::from_secs(10), |b| {
            b["channel"] == "CADMINS" && text_of(b).contains("gpu-1")
        })
        .await?;
    let (_, status) = s.slash("UBOSS", "/fleet", "status").await?;
    assert!(text_of(&status).contains("gpu-1"), "{status}");
    // Admins see everyone's vessels, and may kill any of them by name.
    let (_, list) = s.slash("UBOSS", "/fleet", "vessels <@UEVE|eve>").await?;
    assert!(text_of(&list).contains("ueve"), "{list}");
    let (_, hosts) = s.slash("UBOSS", "/fleet", "hosts").await?;
    assert!(text_of(&hosts).contains("draining"), "{hosts}");
    // Admins set a researcher's unix identity; researchers cannot.
    let (_, answer) = s
        .slash("UEVE", "/fleet", "user <@UFRANK|frank> evil 1000")
        .await?;
    assert!(text_of(&answer).contains("Sorry"), "{answer}");
    let (_, answer) = s
        .slash("UBOSS", "/fleet", "user <@UFRANK|frank> fcastle 31000")
        .await?;
    assert!(text_of(&answer).contains("fcastle"), "{answer}");
    let frank = s.rig.researcher("UFRANK");
    let (_, me) = s
        .rig
        .call(reqwest::Method::GET, "/v1/me", &frank, None)
        .await?;
    assert_eq!(
        (me["unix_name"].as_str(), me["uid"].as_i64()),
        (Some("fcastle"), Some(31000)),
        "{me}"
    );
    // Not while a user has live vessels: they run as the old identity.
    let (_, answer) = s
        .slash("UBOSS", "/fleet", "user <@UEVE|eve> someone")
        .await?;
    assert!(text_of(&answer).contains("live vessel"), "{answer}");
    // The audit log shows what Eve did (her key, her vessel) and the drain.
    let (_, audit) = s.slash("UBOSS", "/fleet", "audit <@UEVE|eve>").await?;
    let shown = text_of(&audit);
    assert!(
        shown.contains("key.add") && shown.contains("vessel.create"),
        "{audit}"
    );
    let (_, audit) = s.slash("UEVE", "/fleet", "audit").await?;
    assert!(text_of(&audit).contains("Sorry"), "{audit}");

    // The App Home tab lists Eve's vessel with its buttons.
    let event = json!({
        "type": "event_callback", "team_id": "T0LAB", "api_app_id": "A0VESSEL",
        "event_id": "Ev0LAB1", "event_time": now(),
        "event": { "type": "app_home_opened", "user": "UEVE", "channel": "DUEVE", "tab": "home",
                   "event_ts": "1700000000.000001" },
    });
    let (status, _) = s
        .post_signed(
            "/slack/events",
            "application/json",
            event.to_string(),
            now(),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let home = s
        .slack
        .wait_for("views.publish", Duration::from_secs(10), |b| {
            b["user_id"] == "UEVE"
        })
        .await?;
    assert!(
        home.body["view"].to_string().contains("vessel.kill"),
        "{}",
        home.body
    );
    // Slack's URL check.
    let (_, challenge) = s
        .post_signed(
            "/slack/events",
            "application/json",
            json!({ "type": "url_verification", "challenge": "c-123" }).to_string(),
            now(),
            None,
        )
        .await?;
    assert_eq!(challenge["challenge"], "c-123");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bot_that_was_down_delivers_each_dm_exactly_once() -> anyhow::Result<()> {
    let mut s = SlackRig::start(&[]).await?;
    s.add_key("UCAROL").await?;
    let (_, ack) = s
        .slash("UCAROL", "/vessel", "create queue=cpu name=late")
        .await?;
    assert!(text_of(&ack).contains("Provisioning late"), "{ack}");
    s.stop_bot();

    // The vessel comes up while nobody is there to tell Carol.
    let token = s.rig.researcher("UCAROL");
    s.rig
        .wait_state(&token, "late", &["running"], Duration::from_secs(60))
        .await?;
    let running_dms = |s: &SlackRig| {
        s.slack
            .calls("chat.postMessage")
            .into_iter()
            .filter(|c| {
                c.body["channel"] == "DUCAROL" && text_of(&c.body).contains("late is running")
            })
            .count()
    };
    assert_eq!(running_dms(&s), 0);

    s.start_bot().await?;
    s.slack
        .wait_for("chat.postMessage", Duration::from_secs(30), |b| {
            b["channel"] == "DUCAROL" && text_of(b).contains("late is running")
        })
        .await?;
    // Once the bot's cursor has moved past every event so far, restart it
    // again: still one DM.
    let last: i64 = sqlx::query_scalar("SELECT max(id) FROM events")
        .fetch_one(&s.rig.db)
        .await?;
    eventually(
        "the cursor to pass the last event",
        Duration::from_secs(30),
        || async {
            let safe: Option<i64> = sqlx::query_scalar(
                "SELECT (value->>'safe')::bigint FROM bot_state WHERE key = 'slack-cursor'",
            )
            .fetch_optional(&s.rig.db)
            .await?;
            Ok((safe.unwrap_or(0) >= last).then_some(()))
        },
    )
    .await?;
    s.stop_bot();
    s.start_bot().await?;
    // Prove the restarted bot is delivering (a new event reaches Slack)
    // before counting.
    let (_, _) = s.slash("UCAROL", "/vessel", "kill late").await?;
    s.slack
        .wait_for("chat.update", Duration::from_secs(30), |b| {
            b["channel"] == "DUCAROL" && text_of(b).contains("was buried")
        })
        .await?;
    assert_eq!(
        running_dms(&s),
        1,
        "the running DM was delivered more than once"
    );
    Ok(())
}

/// Everything logged, at debug level, by both services while they handle
/// good and bad requests: no secret and no bearer token may appear in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_or_token_reaches_the_logs() -> anyhow::Result<()> {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    // nextest runs each test in its own process, so this test owns the
    // global subscriber; under a shared process the install fails loudly.
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot capture logs (run under nextest): {e}"))?;

    let s = SlackRig::start(&["UBOSS"]).await?;
    s.add_key("UZED").await?;
    let (_, ack) = s
        .slash("UZED", "/vessel", "create queue=cpu name=quiet")
        .await?;
    assert!(text_of(&ack).contains("Provisioning quiet"), "{ack}");
    s.slack
        .wait_for("chat.postMessage", Duration::from_secs(60), |b| {
            text_of(b).contains("quiet is running")
        })
        .await?;
    // Bad tokens and forged requests are logged as refusals, without themselves.
    let token = s.rig.researcher("UZED");
    let forged = format!("{token}x");
    let (status, answer) = s
        .rig
        .call(reqwest::Method::GET, "/v1/vessels", &forged, None)
        .await?;
    assert_eq!(status, 401);
    assert!(!answer.to_string().contains(&token), "the token was echoed");
    let body = s.slash_body("UZED", "/vessel", "list");
    let (status, _) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body,
            now(),
            Some("v0=deadbeef".into()),
        )
        .await?;
    assert_eq!(status, 401);
    let ok_token = s.rig.researcher("UZED");
    let (status, _) = s
        .rig
        .call(reqwest::Method::GET, "/v1/vessels", &ok_token, None)
        .await?;
    assert_eq!(status, 200);

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(logs.contains("listening for Slack"), "nothing was captured");
    assert!(
        logs.contains("refused a Slack request"),
        "the forgery was not logged"
    );
    let ops_key = std::fs::read_to_string(s.rig.dir.join("ops"))?;
    let ops_key_body = ops_key.lines().nth(1).unwrap_or("x").to_string();
    for (what, secret) in [
        ("the service's private key", SERVICE_KEY_SECRET.to_string()),
        ("the Slack signing secret", SIGNING.to_string()),
        ("the Slack bot token", "xoxb-test-token".to_string()),
        ("a bearer token", token.clone()),
        ("a forged bearer token", forged.clone()),
        ("another bearer token", ok_token.clone()),
        ("the hosts' SSH key", ops_key_body),
    ] {
        assert!(!logs.contains(&secret), "{what} appears in the logs");
    }
    // Nor in what the configs print.
    let printed = format!("{:?}", s.config()?);
    assert!(
        !printed.contains(SIGNING)
            && !printed.contains(SERVICE_KEY_SECRET)
            && !printed.contains("xoxb-"),
        "{printed}"
    );
    Ok(())
}

/// Two bot replicas: a signed request replayed to the other replica is
/// refused there too, because the guard lives in the orchestrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_to_another_bot_replica_is_refused() -> anyhow::Result<()> {
    let s = SlackRig::start(&[]).await?;
    let second = vessel_bot::startup::start(s.config()?).await?;
    let body = s.slash_body("UEVE", "/vessel", "list");
    let ts = now();
    let signature = sign(SIGNING.as_bytes(), &ts.to_string(), body.as_bytes());
    let (status, answer) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body.clone(),
            ts,
            Some(signature.clone()),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    let replay = s
        .http
        .post(format!(
            "http://{}/slack/commands",
            second.addr.expect("HTTP mode")
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await?;
    assert_eq!(replay.status(), 401, "the other replica acted on a replay");
    Ok(())
}

/// Issue 21 through Slack: *Hibernate* on the running DM (confirmed: its
/// processes end) turns the DM into the hibernated one with *Wake*;
/// `/vessel wake` brings it back, the DM shows it running again, and the
/// SSH access from the first DM still logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hibernate_from_the_dm_and_wake_by_command_keep_the_ssh_access() -> anyhow::Result<()> {
    let s = SlackRig::start(&[]).await?;
    s.slack.set_name("UALICE", "alice");
    s.add_key("UALICE").await?;
    s.slash("UALICE", "/vessel", "create gpu=1 queue=3090 name=train")
        .await?;
    let dm = s
        .slack
        .wait_for("chat.postMessage", Duration::from_secs(60), |b| {
            b["channel"] == "DUALICE" && text_of(b).contains("train is running")
        })
        .await?;
    let access = access_from_dm(&dm.body, "train");
    let hibernate = button(&dm.body, "vessel.hibernate");
    assert!(
        hibernate["confirm"].is_object(),
        "Hibernate must ask to confirm"
    );
    let press = |action: &str, value: &Value| {
        json!({
            "type": "block_actions",
            "api_app_id": "A0VESSEL",
            "user": { "id": "UALICE", "username": "alice", "team_id": "T0LAB" },
            "team": { "id": "T0LAB" },
            "channel": { "id": "DUALICE" },
            "container": { "type": "message", "message_ts": "1700000000.000002", "channel_id": "DUALICE" },
            "message": { "ts": "1700000000.000002" },
            "response_url": s.slack.response_url(),
            "trigger_id": "1.2.3",
            "actions": [{ "type": "button", "action_id": action, "block_id": "b", "value": value, "action_ts": "1" }],
        })
    };
    let (status, _) = s
        .interact(press("vessel.hibernate", &hibernate["value"]))
        .await?;
    assert_eq!(status, 200);
    let asleep = s
        .slack
        .wait_for("chat.update", Duration::from_secs(30), |b| {
            b["channel"] == "DUALICE" && text_of(b).contains("is hibernated on")
        })
        .await?;
    button(&asleep.body, "vessel.wake");

    let (status, ack) = s.slash("UALICE", "/vessel", "wake train").await?;
    assert_eq!(status, 200);
    assert!(text_of(&ack).contains("Waking"), "{ack}");
    let awake = s
        .slack
        .wait_for("chat.update", Duration::from_secs(60), |b| {
            b["channel"] == "DUALICE" && text_of(b).contains("train is running")
        })
        .await;
    if let Err(e) = awake {
        let token = s.rig.researcher("UALICE");
        let id = hibernate["value"].as_str().unwrap_or_default();
        let v = s.rig.show(&token, id).await?;
        let calls: Vec<String> = s
            .slack
            .calls("chat.update")
            .iter()
            .chain(s.slack.calls("chat.postMessage").iter())
            .map(|c| text_of(&c.body))
            .collect();
        anyhow::bail!("{e}: the vessel is {v}; Slack saw {calls:#?}");
    }
    assert_eq!(s.rig.ssh(&access, "id -un")?.trim(), "alice");
    Ok(())
}
