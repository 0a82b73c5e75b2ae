//! Races between the loops that decide from rows read earlier (the
//! reconciler, the undertaker, the conductor's workers) and changes that
//! land in between: each is interleaved by hand, against the real
//! Postgres, so the change that landed must win.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use vessel_orchestrator::clock::ManualClock;
use vessel_orchestrator::domain::VesselState;
use vessel_orchestrator::reconciler::Report;
use vessel_orchestrator::store::{jobs, vessels};

use crate::prometheus::{Exporter, Prometheus};
use crate::rig::{docker, gpu_host, Options, Rig};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn scalar_i64(rig: &Rig, sql: &'static str, id: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).bind(id).fetch_one(&rig.db).await?)
}

/// What `POST /extend` writes to the row.
async fn extend_by_an_hour(rig: &Rig, id: &str) -> anyhow::Result<()> {
    let id: uuid::Uuid = id.parse()?;
    let mut conn = rig.db.acquire().await?;
    let row = vessels::get(&mut conn, id).await?.expect("the vessel");
    vessels::set_expiry(&mut conn, id, row.expires_at + chrono::Duration::hours(1)).await?;
    Ok(())
}

/// Item 7: the reconciler read the rows after listing the containers, so a
/// vessel that started in between was `running` without a container: lost,
/// its devices freed, while it ran. The rows are read first now; a vessel
/// that starts after they were read is neither lost nor an orphan.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vessel_that_starts_mid_reconcile_is_not_marked_lost() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let reconciler = &rig.app().reconciler;

    // The pass reads its rows before the vessel has started…
    let rows = reconciler.rows("gpu-1").await?;
    assert!(
        rows.iter()
            .all(|r| r.id.to_string() != id || r.state != VesselState::Running),
        "the vessel was running before the race could be staged: {rows:?}"
    );
    // …the vessel starts…
    rig.wait_state(&alice, &id, &["running"], Duration::from_secs(60))
        .await?;
    // …and the pass lists the containers and acts.
    let mut report = Report::default();
    reconciler.host_from("gpu-1", &rows, &mut report).await?;
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.orphans_removed, 0, "{report:?}");
    assert_eq!(rig.show(&alice, &id).await?["state"], "running");
    docker(&["inspect", &format!("vessel-{id}")])?;
    let held = scalar_i64(
        &rig,
        "SELECT count(*) FROM reservations WHERE vessel_id::text = $1",
        &id,
    )
    .await?;
    assert_eq!(held, 1, "the running vessel's devices were freed");
    Ok(())
}

/// Item 7, the act: a decision taken from rows that changed before the act
/// is not carried out; the next pass decides again from fresh rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vessel_changed_after_the_rows_were_read_is_not_marked_lost_from_them(
) -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (_, v) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    let id = v["id"].as_str().unwrap().to_string();
    rig.wait_state(&alice, &id, &["running"], Duration::from_secs(60))
        .await?;
    let reconciler = &rig.app().reconciler;
    let rows = reconciler.rows("gpu-1").await?;
    // Its container goes, and its row is written after the read (what an
    // Extend writes): the rows read no longer describe it.
    docker(&["rm", "-f", &format!("vessel-{id}")])?;
    extend_by_an_hour(&rig, &id).await?;
    let mut report = Report::default();
    reconciler.host_from("gpu-1", &rows, &mut report).await?;
    assert_eq!(report.lost, 0, "acted on a stale row: {report:?}");
    assert_eq!(rig.show(&alice, &id).await?["state"], "running");
    // From fresh rows the loss is real and is recorded.
    let report = reconciler.run_once().await?;
    assert_eq!(report.lost, 1, "{report:?}");
    assert_eq!(rig.show(&alice, &id).await?["state"], "lost");
    Ok(())
}

/// An idle GPU vessel on a clock the test moves; work hours 9–18 Berlin
/// (the undertaker tests' set-up).
async fn idle_vessel() -> anyhow::Result<(Rig, Exporter, Prometheus, ManualClock, String, String)> {
    let idle = crate::undertaker::Idle::start("2026-11-30T08:00:00Z").await?;
    Ok((
        idle.rig,
        idle.exporter,
        idle.prometheus,
        idle.clock,
        idle.token,
        idle.id,
    ))
}

/// Item 11: a sweep read its rows at the start and buried from them, so a
/// Keep pressed while it ran was overwritten and the vessel buried.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keep_pressed_during_a_sweep_saves_the_vessel() -> anyhow::Result<()> {
    let (rig, _exporter, _prometheus, clock, token, id) = idle_vessel().await?;
    let undertaker = &rig.app().undertaker;
    for t in ["2026-11-30T08:00:00Z", "2026-11-30T14:00:00Z"] {
        clock.set(at(t));
        undertaker.sweep().await?;
    }
    // Warned at 15:00 Monday; Tuesday 12:00 is twelve idle work-hours.
    clock.set(at("2026-12-01T11:00:00Z"));
    let read = undertaker.running().await?;
    let (status, body) = rig
        .call(
            reqwest::Method::POST,
            &format!("/v1/vessels/{id}/keep"),
            &token,
            Some(json!({ "for": "24h" })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    undertaker.sweep_from(&read).await?;
    assert_eq!(
        rig.show(&token, &id).await?["state"],
        "running",
        "buried although kept"
    );
    let (idle, kept): (f64, bool) = sqlx::query_as(
        "SELECT idle_secs, keep_until IS NOT NULL FROM vessel_idle WHERE vessel_id::text = $1",
    )
    .bind(&id)
    .fetch_one(&rig.db)
    .await?;
    assert!(kept, "the Keep was overwritten");
    assert_eq!(idle, 0.0, "the sweep's stale counter overwrote the Keep's");
    Ok(())
}

/// Item 11, expiry: an Extend pressed during a sweep that read the vessel
/// as expired keeps it alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_extend_pressed_during_a_sweep_saves_an_expiring_vessel() -> anyhow::Result<()> {
    let (rig, _exporter, _prometheus, clock, token, id) = idle_vessel().await?;
    let undertaker = &rig.app().undertaker;
    // Its lifetime ends at 10:00; the API's clock is the test's too.
    sqlx::query("UPDATE vessels SET expires_at = '2026-11-30T10:00:00Z' WHERE id::text = $1")
        .bind(&id)
        .execute(&rig.db)
        .await?;
    clock.set(at("2026-11-30T10:00:00Z"));
    let read = undertaker.running().await?;
    // The Extend's write (the API caps it by the real creation time, which
    // the test clock is far from).
    extend_by_an_hour(&rig, &id).await?;
    let report = undertaker.sweep_from(&read).await?;
    assert_eq!(report.expired, 1, "the race was not staged: {report:?}");
    assert_eq!(
        rig.show(&token, &id).await?["state"],
        "running",
        "buried although extended"
    );
    Ok(())
}

/// Item 13: a worker whose lease expired and was claimed by another could
/// still finish, reschedule or release the job the new holder works on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_lost_its_lease_cannot_finish_or_retry_the_job() -> anyhow::Result<()> {
    // No workers: the test is the only one claiming.
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 202, "{v}");
    let id: uuid::Uuid = v["id"].as_str().unwrap().parse()?;
    let lease = Duration::from_secs(60);

    let first = jobs::claim(&rig.db, "old", lease)
        .await?
        .expect("a job for the new vessel");
    assert_eq!(first.vessel_id, id);
    // Its lease runs out (a stalled worker) and another worker claims it.
    sqlx::query("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE vessel_id = $1")
        .bind(id)
        .execute(&rig.db)
        .await?;
    let second = jobs::claim(&rig.db, "new", lease)
        .await?
        .expect("the expired job is claimed again");

    // The stale worker wakes up: none of its writes land.
    assert!(!jobs::renew(&rig.db, &first, lease).await?);
    assert!(!jobs::finish(&rig.db, &first).await?);
    assert!(!jobs::retry_later(&rig.db, &first, Duration::from_secs(600), "stale").await?);
    assert!(!jobs::release(&rig.db, &first).await?);
    let (holder, error): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT leased_by, last_error FROM jobs WHERE vessel_id = $1")
            .bind(id)
            .fetch_one(&rig.db)
            .await?;
    assert_eq!(holder.as_deref(), Some(second.holder.as_str()));
    assert_eq!(error, None);

    // The holder's own writes do land.
    assert!(jobs::renew(&rig.db, &second, lease).await?);
    assert!(jobs::finish(&rig.db, &second).await?);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE vessel_id = $1")
        .bind(id)
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(left, 0);
    Ok(())
}
