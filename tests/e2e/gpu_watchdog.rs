//! The GPU watchdog against a real Prometheus scraping one fake DCGM
//! exporter per host: one host's exporter stops, and the orchestrator
//! probes that host at once, corrects its vessels' states as the probe
//! finds them, and tells each owner and the admins once. And periodic
//! jobs run once per tick with two orchestrators on one database.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use vessel_orchestrator::config::Config;
use vessel_orchestrator::startup::Application;

use crate::fake_slack::text_of;
use crate::prometheus::{ensure_installed, Exporter, Prometheus};
use crate::rig::{cpu_host, docker, eventually, gpu_host, Options, Rig};
use crate::slack::SlackRig;

const NEVER: &str = vessel_orchestrator::schedule::NEVER;

/// The test's GPU messages to `channel` about `host`.
fn gpu_messages(s: &SlackRig, channel: &str, host: &str) -> Vec<String> {
    s.slack
        .calls("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == channel)
        .map(|c| text_of(&c.body))
        .filter(|t| t.contains(&format!("GPU metrics from `{host}`")))
        .collect()
}

fn ran(app: &Application, job: &str) -> u64 {
    app.jobs[job].ran.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_whose_gpu_metrics_stop_is_probed_and_its_people_told_once() -> anyhow::Result<()> {
    ensure_installed()?;
    let exporters = [Exporter::start().await?, Exporter::start().await?];
    let prometheus = Prometheus::scraping(&[&exporters[0], &exporters[1]]).await?;
    // Scraped every second: stale after three seconds without a sample.
    let extra = format!(
        "[undertaker]\nprometheus_url = \"{}\"\nschedule = \"{NEVER}\"\n\
         [watchdog]\nschedule = \"* * * * * *\"\nscrape_interval = \"1s\"\n",
        prometheus.url
    );
    let s = SlackRig::start_on(
        &[gpu_host("gpu-1", 2, "3090"), gpu_host("gpu-2", 2, "3090")],
        &[],
        Options {
            extra_config: extra,
            ..Options::default()
        },
    )
    .await?;
    let rig = &s.rig;

    // Each host's exporter reports its own GPUs.
    let gpus: Vec<(String, String)> = sqlx::query_as(
        "SELECT h.name, g.uuid FROM gpus g JOIN hosts h ON h.id = g.host_id ORDER BY h.name",
    )
    .fetch_all(&rig.db)
    .await?;
    assert_eq!(gpus.len(), 4);
    for (host, uuid) in &gpus {
        let exporter = if host == "gpu-1" {
            &exporters[0]
        } else {
            &exporters[1]
        };
        exporter.set(host, uuid, 50.0);
    }
    let uuids: Vec<String> = gpus.iter().map(|(_, u)| u.clone()).collect();
    prometheus.wait_for("5s", &uuids, 50.0).await?;

    // Alice and Bob each get a GPU; best-fit puts them on one host.
    let mut ids = BTreeMap::new();
    for (user, name) in [("UALICE", "train"), ("UBOB", "eval")] {
        let token = rig.researcher(user);
        rig.add_key(&token).await?;
        let (status, v) = rig
            .create(&token, json!({ "queue": "3090", "gpus": 1, "name": name }))
            .await?;
        assert_eq!(status, 202, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let v = rig
            .wait_state(&token, &id, &["running"], Duration::from_secs(60))
            .await?;
        ids.insert(user, (id, v["host"].as_str().unwrap().to_string(), token));
    }
    let host = ids["UALICE"].1.clone();
    assert_eq!(ids["UBOB"].1, host, "best-fit shares the host");
    let (stopped, other) = if host == "gpu-1" {
        (&exporters[0], "gpu-2")
    } else {
        (&exporters[1], "gpu-1")
    };
    // Both running DMs first, so the counts below are only the incident's.
    for user in ["UALICE", "UBOB"] {
        s.slack
            .wait_for("chat.postMessage", Duration::from_secs(30), |b| {
                b["channel"] == format!("D{user}") && text_of(b).contains("is running")
            })
            .await?;
    }
    let opened: i64 = sqlx::query_scalar("SELECT count(*) FROM gpu_incidents")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(opened, 0, "an incident with every exporter up");

    // Bob's container dies unnoticed (no survey, no reconciler runs here);
    // then the host's exporter stops.
    docker(&["rm", "-f", &format!("vessel-{}", ids["UBOB"].0)])?;
    let probed_before: DateTime<Utc> =
        sqlx::query_scalar("SELECT probed_at FROM hosts WHERE name = $1")
            .bind(&host)
            .fetch_one(&rig.db)
            .await?;
    stopped.set_stopped(true);

    // The incident opens: within a few ticks of stale_after.
    let (stale_gpus, finding): (Vec<String>, String) = eventually(
        "the GPU incident to open",
        Duration::from_secs(60),
        || async {
            Ok(sqlx::query_as(
                "SELECT stale_gpus, finding FROM gpu_incidents WHERE host = $1 AND closed_at IS NULL",
            )
            .bind(&host)
            .fetch_optional(&rig.db)
            .await?)
        },
    )
    .await?;
    let mut expected: Vec<String> = gpus
        .iter()
        .filter(|(h, _)| *h == host)
        .map(|(_, u)| u.clone())
        .collect();
    expected.sort();
    let mut stale_gpus = stale_gpus;
    stale_gpus.sort();
    assert_eq!(stale_gpus, expected);
    assert!(finding.contains("it answers"), "{finding}");

    // The probe happened (only the watchdog probes in this test)…
    let probed_after: DateTime<Utc> =
        sqlx::query_scalar("SELECT probed_at FROM hosts WHERE name = $1")
            .bind(&host)
            .fetch_one(&rig.db)
            .await?;
    assert!(probed_after > probed_before, "the host was not probed");
    // …and the states are what it found: Alice's runs, Bob's is gone.
    let state = |user: &'static str| {
        let (id, _, token) = &ids[user];
        async move {
            anyhow::Ok(
                rig.show(token, id).await?["state"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        }
    };
    assert_eq!(state("UALICE").await?, "running");
    assert_eq!(state("UBOB").await?, "lost");

    // One message each: the admins, Alice, Bob, each saying what to do.
    let admin = s
        .slack
        .wait_for("chat.postMessage", Duration::from_secs(30), |b| {
            b["channel"] == "CADMINS" && text_of(b).contains("GPU metrics from")
        })
        .await?;
    let text = text_of(&admin.body);
    assert!(
        text.contains(&host) && text.contains("What to do"),
        "{text}"
    );
    assert!(text.contains("nvidia-dcgm-exporter"), "{text}");
    let alice = s
        .slack
        .wait_for("chat.postMessage", Duration::from_secs(30), |b| {
            b["channel"] == "DUALICE" && text_of(b).contains("GPU metrics from")
        })
        .await?;
    let text = text_of(&alice.body);
    assert!(text.contains("*train* still run"), "{text}");
    let bob = s
        .slack
        .wait_for("chat.postMessage", Duration::from_secs(30), |b| {
            b["channel"] == "DUBOB" && text_of(b).contains("GPU metrics from")
        })
        .await?;
    let text = text_of(&bob.body);
    assert!(
        text.contains("eval") && text.contains("marked lost"),
        "{text}"
    );

    // Still stale for several more ticks, and a tick run by hand (as a
    // restarted replica would): no second incident, no second message.
    let app = rig.app();
    let ticks = ran(app, "gpu_watchdog");
    eventually(
        "three more watchdog ticks",
        Duration::from_secs(30),
        || async { Ok((ran(app, "gpu_watchdog") >= ticks + 3).then_some(())) },
    )
    .await?;
    let report = app.gpu_watchdog.as_ref().unwrap().tick().await?;
    assert!(report.opened.is_empty(), "{report:?}");
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'host.gpu_metrics_stale'")
            .fetch_one(&rig.db)
            .await?;
    assert_eq!(events, 3, "admins, Alice and Bob: one each");
    // The bot has read past them (its cursor is saved after each event).
    eventually(
        "the bot to pass the incident's events",
        Duration::from_secs(30),
        || async {
            let last: i64 = sqlx::query_scalar("SELECT max(id) FROM events")
                .fetch_one(&rig.db)
                .await?;
            let cursor: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT value FROM bot_state WHERE key = 'slack-cursor'")
                    .fetch_optional(&rig.db)
                    .await?;
            let safe = cursor.and_then(|c| c["safe"].as_i64()).unwrap_or(0);
            Ok((safe >= last).then_some(()))
        },
    )
    .await?;
    for channel in ["CADMINS", "DUALICE", "DUBOB"] {
        assert_eq!(gpu_messages(&s, channel, &host).len(), 1, "{channel}");
    }
    let other_incidents: i64 =
        sqlx::query_scalar("SELECT count(*) FROM gpu_incidents WHERE host = $1")
            .bind(other)
            .fetch_one(&rig.db)
            .await?;
    assert_eq!(other_incidents, 0, "the host whose exporter runs");

    // The exporter comes back: the incident closes, quietly.
    stopped.set_stopped(false);
    eventually("the incident to close", Duration::from_secs(60), || async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM gpu_incidents WHERE closed_at IS NULL")
                .fetch_one(&rig.db)
                .await?;
        Ok((open == 0).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_orchestrators_on_one_database_run_each_tick_once() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[cpu_host("cpu-1")],
        Options {
            extra_config: "[undertaker]\nschedule = \"* * * * * *\"\n".into(),
            ..Options::default()
        },
    )
    .await?;
    let second = Application::build(Config::from_toml_str(&rig.config_text)?).await?;
    let first = rig.app();
    let (ran_before, rows_before) = (ran(first, "undertaker"), tick_rows(&rig).await?);
    // Both fire every second; wait until the second has seen ten ticks.
    eventually(
        "ten ticks on the second replica",
        Duration::from_secs(60),
        || async {
            let c = &second.jobs["undertaker"];
            let seen = c.ran.load(Ordering::Relaxed) + c.skipped.load(Ordering::Relaxed);
            Ok((seen >= 10).then_some(()))
        },
    )
    .await?;
    let second_counts = second.jobs["undertaker"].clone();
    second.stop().await;
    let ran_first = ran(first, "undertaker") - ran_before;
    let ran_second = second_counts.ran.load(Ordering::Relaxed);
    let skipped = first.jobs["undertaker"].skipped.load(Ordering::Relaxed)
        + second_counts.skipped.load(Ordering::Relaxed);
    let rows = tick_rows(&rig).await? - rows_before;
    println!("undertaker ticks: {rows}; runs {ran_first} + {ran_second}; skips {skipped}");
    // Every run claimed a tick of its own, and every tick was run once:
    // the other replica skipped it.
    assert!(
        (ran_first + ran_second).abs_diff(rows) <= 2,
        "runs {ran_first} + {ran_second} vs ticks {rows}"
    );
    assert!(
        skipped >= 8,
        "the replicas did not both fire: {skipped} skips"
    );
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT tick FROM job_ticks WHERE job = 'undertaker'
                                GROUP BY tick HAVING count(*) > 1) d",
    )
    .fetch_one(&rig.db)
    .await?;
    assert_eq!(doubled, 0);
    Ok(())
}

async fn tick_rows(rig: &Rig) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM job_ticks WHERE job = 'undertaker'")
        .fetch_one(&rig.db)
        .await?;
    Ok(n as u64)
}
