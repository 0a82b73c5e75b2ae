//! Idle reclaim against a real Prometheus scraping a DCGM-format exporter,
//! with the undertaker's clock under the test's control. Work hours are
//! 9–18 in Berlin, Monday to Friday.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::json;
use vessel_orchestrator::clock::ManualClock;

use crate::prometheus::{ensure_installed, Exporter, Prometheus};
use crate::rig::{gpu_host, Options, Rig};

/// An idle GPU vessel on a clock the test moves; the races tests use it too.
pub(crate) struct Idle {
    pub(crate) rig: Rig,
    pub(crate) exporter: Exporter,
    pub(crate) prometheus: Prometheus,
    pub(crate) clock: ManualClock,
    pub(crate) token: String,
    pub(crate) id: String,
    uuids: Vec<String>,
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

impl Idle {
    /// On the burying queue (work hours, `warn_after`, `bury_after`).
    pub(crate) async fn start(start: &str) -> anyhow::Result<Idle> {
        Idle::start_with(start, "idle_action = \"bury\"").await
    }

    /// With `queue_3090` keys of the test's.
    pub(crate) async fn start_with(start: &str, queue_3090: &str) -> anyhow::Result<Idle> {
        ensure_installed()?;
        let exporter = Exporter::start().await?;
        let prometheus = Prometheus::start(&exporter).await?;
        let clock = ManualClock::at(at(start));
        let extra = format!(
            "[undertaker]\nprometheus_url = \"{}\"\nwindow = \"5s\"\nschedule = \"0 0 0 29 2 *\"\n\
             [work_hours]\ntimezone = \"Europe/Berlin\"\nstart = \"09:00\"\nend = \"18:00\"\nholidays = [\"2026-12-25\"]\n",
            prometheus.url
        );
        let rig = Rig::start_with(
            &[gpu_host("gpu-1", 2, "3090")],
            Options {
                clock: Some(clock.clone()),
                extra_config: extra,
                queue_3090: queue_3090.into(),
                ..Options::default()
            },
        )
        .await?;
        let token = rig.researcher("alice");
        rig.add_key(&token).await?;
        let (status, v) = rig
            .create(
                &token,
                json!({ "queue": "3090", "gpus": 1, "name": "idler", "lifetime": "7d" }),
            )
            .await?;
        assert_eq!(status, 202, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let v = rig
            .wait_state(&token, &id, &["running"], Duration::from_secs(60))
            .await?;
        let uuids: Vec<String> = v["gpu_uuids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect();
        for u in &uuids {
            exporter.set("gpu-1", u, 0.0);
        }
        prometheus.wait_for("5s", &uuids, 0.0).await?;
        // The vessel must not expire during the scenario: its lifetime is
        // measured on the same clock as the sweeps.
        sqlx::query("UPDATE vessels SET expires_at = '2027-06-01T00:00:00Z'")
            .execute(&rig.db)
            .await?;
        Ok(Idle {
            rig,
            exporter,
            prometheus,
            clock,
            token,
            id,
            uuids,
        })
    }

    pub(crate) async fn sweep_at(&self, t: &str) -> anyhow::Result<()> {
        self.clock.set(at(t));
        let report = self.rig.app().undertaker.sweep().await?;
        assert!(!report.skipped, "another sweep held the lock");
        Ok(())
    }

    async fn events(&self, kind: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE kind = $1 AND vessel_id::text = $2",
        )
        .bind(kind)
        .bind(&self.id)
        .fetch_one(&self.rig.db)
        .await?)
    }

    async fn idle_hours(&self) -> anyhow::Result<f64> {
        let secs: f64 =
            sqlx::query_scalar("SELECT idle_secs FROM vessel_idle WHERE vessel_id::text = $1")
                .bind(&self.id)
                .fetch_one(&self.rig.db)
                .await?;
        Ok(secs / 3600.0)
    }

    async fn state(&self) -> anyhow::Result<String> {
        Ok(self.rig.show(&self.token, &self.id).await?["state"]
            .as_str()
            .unwrap()
            .to_string())
    }

    pub(crate) async fn wait_buried(&self) -> anyhow::Result<serde_json::Value> {
        self.rig
            .wait_state(&self.token, &self.id, &["buried"], Duration::from_secs(30))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_in_work_hours_is_warned_at_6h_and_buried_at_12h() -> anyhow::Result<()> {
    let t = Idle::start("2026-11-30T08:00:00Z").await?; // Monday 09:00 in Berlin
    t.sweep_at("2026-11-30T08:00:00Z").await?;
    t.sweep_at("2026-11-30T13:59:00Z").await?;
    assert_eq!(t.events("vessel.idle_warning").await?, 0);
    t.sweep_at("2026-11-30T14:00:00Z").await?; // 15:00: six idle work-hours
    assert_eq!(t.events("vessel.idle_warning").await?, 1);
    t.sweep_at("2026-11-30T20:00:00Z").await?; // the evening does not count
    assert!((t.idle_hours().await? - 9.0).abs() < 0.01);
    assert_eq!(t.state().await?, "running");
    t.sweep_at("2026-12-01T11:00:00Z").await?; // Tuesday 12:00: twelve
    let buried = t.wait_buried().await?;
    assert!(
        buried["reason"]
            .as_str()
            .unwrap()
            .contains("idle for 12 work-hours"),
        "{buried}"
    );
    assert_eq!(t.events("vessel.idle_warning").await?, 1, "warned once");
    let actor: String =
        sqlx::query_scalar("SELECT actor FROM audit_log WHERE action = 'vessel.bury'")
            .fetch_one(&t.rig.db)
            .await?;
    assert_eq!(actor, "undertaker");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_weekend_of_idleness_counts_nothing_and_activity_resets() -> anyhow::Result<()> {
    let t = Idle::start("2026-11-28T08:00:00Z").await?; // Saturday
    t.sweep_at("2026-11-28T08:00:00Z").await?;
    t.sweep_at("2026-11-29T20:00:00Z").await?; // Sunday evening
    assert_eq!(t.idle_hours().await?, 0.0);
    assert_eq!(t.events("vessel.idle_warning").await?, 0);
    t.sweep_at("2026-11-30T13:00:00Z").await?; // Monday 14:00: five hours
    assert!((t.idle_hours().await? - 5.0).abs() < 0.01);
    // Someone uses the GPU: the counter starts again.
    for u in &t.uuids {
        t.exporter.set("gpu-1", u, 57.0);
    }
    t.prometheus.wait_for("5s", &t.uuids, 57.0).await?;
    t.sweep_at("2026-11-30T16:00:00Z").await?;
    assert_eq!(t.idle_hours().await?, 0.0);
    assert_eq!(t.events("vessel.idle_warning").await?, 0);
    assert_eq!(t.state().await?, "running");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keep_exempts_until_it_ends() -> anyhow::Result<()> {
    let t = Idle::start("2026-11-30T08:00:00Z").await?;
    t.sweep_at("2026-11-30T08:00:00Z").await?;
    t.sweep_at("2026-11-30T14:00:00Z").await?;
    assert_eq!(t.events("vessel.idle_warning").await?, 1);
    // Keep (the DM's button) for a day, from 15:00 Monday.
    let (status, body) = t
        .rig
        .call(
            reqwest::Method::POST,
            &format!("/v1/vessels/{}/keep", t.id),
            &t.token,
            Some(json!({ "for": "24h" })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    t.sweep_at("2026-12-01T11:00:00Z").await?; // would have been 12h
    t.sweep_at("2026-12-01T13:30:00Z").await?;
    assert_eq!(t.state().await?, "running", "buried while kept");
    assert_eq!(t.idle_hours().await?, 0.0);
    // After the exemption, idleness counts again (Tuesday 15:30–19:00 local
    // and Wednesday from 9:00): warned, then buried.
    t.sweep_at("2026-12-02T11:00:00Z").await?;
    assert_eq!(t.events("vessel.idle_warning").await?, 2);
    t.sweep_at("2026-12-02T17:00:00Z").await?;
    t.wait_buried().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_a_dst_weekend_work_hours_stay_nine_to_six_local() -> anyhow::Result<()> {
    // Berlin leaves summer time on Sunday 2026-10-25: Friday's 18:00 is
    // 16:00 UTC, Monday's 09:00 is 08:00 UTC.
    let t = Idle::start("2026-10-23T12:00:00Z").await?; // Friday 14:00 CEST
    t.sweep_at("2026-10-23T12:00:00Z").await?;
    t.sweep_at("2026-10-26T08:00:00Z").await?; // Monday 09:00 CET
    let hours = t.idle_hours().await?;
    assert!(
        (hours - 4.0).abs() < 0.01,
        "only Friday 14–18 local counts: {hours}"
    );
    t.sweep_at("2026-10-26T09:00:00Z").await?; // 10:00 CET
    assert!((t.idle_hours().await? - 5.0).abs() < 0.01);
    assert_eq!(t.events("vessel.idle_warning").await?, 0);
    t.sweep_at("2026-10-26T10:00:00Z").await?; // 11:00 CET: six
    assert_eq!(t.events("vessel.idle_warning").await?, 1);
    t.sweep_at("2026-10-26T15:59:00Z").await?; // 16:59 CET
    assert_eq!(t.state().await?, "running");
    t.sweep_at("2026-10-26T16:00:00Z").await?; // 17:00 CET: twelve
    t.wait_buried().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cpu_vessels_are_read_from_docker_and_lifetimes_end() -> anyhow::Result<()> {
    let clock = ManualClock::at(at("2026-11-30T08:00:00Z"));
    let rig = Rig::start_with(
        &[crate::rig::cpu_host("cpu-1")],
        Options {
            clock: Some(clock.clone()),
            extra_config: "[work_hours]\ntimezone = \"Europe/Berlin\"\n".into(),
            ..Options::default()
        },
    )
    .await?;
    let token = rig.researcher("erin");
    rig.add_key(&token).await?;
    let (_, v) = rig
        .create(&token, json!({ "queue": "cpu", "name": "sleepy" }))
        .await?;
    let id = v["id"].as_str().unwrap().to_string();
    rig.wait_state(&token, &id, &["running"], Duration::from_secs(60))
        .await?;
    // Lifetime on the undertaker's clock: ends Tuesday 08:00 UTC.
    sqlx::query("UPDATE vessels SET expires_at = '2026-12-01T08:00:00Z'")
        .execute(&rig.db)
        .await?;
    let events = |kind: &'static str| {
        let db = rig.db.clone();
        let id = id.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM events WHERE kind = $1 AND vessel_id::text = $2",
            )
            .bind(kind)
            .bind(id)
            .fetch_one(&db)
            .await
        }
    };
    let undertaker = &rig.app().undertaker;
    undertaker.sweep().await?; // baseline, Monday 09:00 local
                               // CPU use is measured between two readings of the container's cgroup;
                               // give that measurement a few real seconds.
    crate::rig::eventually(
        "a CPU measuring interval",
        Duration::from_secs(10),
        || async {
            let age: f64 = sqlx::query_scalar(
                "SELECT extract(epoch FROM now() - cpu_read_at)::float8 FROM vessel_idle",
            )
            .fetch_one(&rig.db)
            .await?;
            Ok((age >= 3.0).then_some(()))
        },
    )
    .await?;
    clock.set(at("2026-11-30T14:00:00Z"));
    let report = undertaker.sweep().await?;
    // sshd alone uses no CPU: idle, from Docker's numbers (no Prometheus here).
    assert_eq!((report.idle, report.unknown), (1, 0), "{report:?}");
    assert_eq!(events("vessel.idle_warning").await?, 1);
    // Inside the last day of its lifetime: warned once.
    assert_eq!(events("vessel.expiry_warning").await?, 1);
    clock.set(at("2026-11-30T15:00:00Z"));
    undertaker.sweep().await?;
    assert_eq!(events("vessel.expiry_warning").await?, 1, "warned twice");
    // At the end of its lifetime it is buried, whatever its use.
    clock.set(at("2026-12-01T08:00:01Z"));
    let report = undertaker.sweep().await?;
    assert_eq!(report.expired, 1, "{report:?}");
    let buried = rig
        .wait_state(&token, &id, &["buried"], Duration::from_secs(30))
        .await?;
    assert!(
        buried["reason"]
            .as_str()
            .unwrap()
            .contains("lifetime ended"),
        "{buried}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nobody_is_buried_unwarned_even_after_a_long_gap() -> anyhow::Result<()> {
    let t = Idle::start("2026-11-30T08:00:00Z").await?;
    t.sweep_at("2026-11-30T08:00:00Z").await?;
    // No sweep for a day (the orchestrator was down): twelve idle hours at once.
    t.sweep_at("2026-12-01T11:00:00Z").await?;
    assert_eq!(t.events("vessel.idle_warning").await?, 1);
    assert_eq!(t.state().await?, "running", "buried without a warning");
    assert!((t.idle_hours().await? - 6.0).abs() < 0.01);
    // The full six hours after the warning, then burial.
    t.sweep_at("2026-12-01T16:59:00Z").await?;
    assert_eq!(t.state().await?, "running");
    t.sweep_at("2026-12-01T17:00:00Z").await?;
    t.wait_buried().await?;
    Ok(())
}

/// Issue 21: a hibernating queue (the default) counts idle time around the
/// clock — GPUs by DCGM *and* the vessel's processes — warns `warn_before`
/// ahead with Keep / Hibernate now, and hibernates at `hibernate_after`;
/// Keep from the warning holds it off; the GPU is free once it sleeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_vessel_is_warned_then_hibernated_around_the_clock() -> anyhow::Result<()> {
    // Saturday night: work hours would protect it; hibernation does not care.
    let t = Idle::start_with(
        "2026-12-05T02:00:00Z",
        "hibernate_after = \"1h\"\nwarn_before = \"15m\"",
    )
    .await?;
    // CPU use is measured between two real readings of the cgroup: each
    // sweep after the first waits until the last reading is a few seconds old.
    let cpu_interval = || async {
        crate::rig::eventually(
            "a CPU measuring interval",
            Duration::from_secs(15),
            || async {
                let age: f64 = sqlx::query_scalar(
                    "SELECT extract(epoch FROM now() - cpu_read_at)::float8 FROM vessel_idle",
                )
                .fetch_one(&t.rig.db)
                .await?;
                Ok((age >= 4.0).then_some(()))
            },
        )
        .await
    };
    t.sweep_at("2026-12-05T02:00:00Z").await?; // baseline
    cpu_interval().await?;
    t.sweep_at("2026-12-05T02:46:00Z").await?; // 46 idle minutes: warned
    assert_eq!(t.events("vessel.hibernation_warning").await?, 1);
    assert_eq!(t.state().await?, "running");

    // Keep, from the warning: not hibernated at the hour.
    let (status, body) = t
        .rig
        .call(
            Method::POST,
            &format!("/v1/vessels/{}/keep", t.id),
            &t.token,
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    cpu_interval().await?;
    t.sweep_at("2026-12-05T03:01:00Z").await?;
    assert_eq!(t.state().await?, "running");

    // The Keep ran out (a day) and it idles on: warned again, then asleep.
    cpu_interval().await?;
    t.sweep_at("2026-12-06T04:00:00Z").await?;
    assert_eq!(t.events("vessel.hibernation_warning").await?, 2);
    assert_eq!(t.state().await?, "running");
    cpu_interval().await?;
    t.sweep_at("2026-12-06T04:16:00Z").await?;
    let asleep = t
        .rig
        .wait_state(&t.token, &t.id, &["hibernated"], Duration::from_secs(30))
        .await?;
    assert!(
        asleep["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("idle minutes"),
        "{asleep}"
    );
    let fleet = t.rig.fleet(&t.token).await?;
    assert!(fleet["hosts"][0]["gpus"][0]["vessel"].is_null(), "{fleet}");
    Ok(())
}
