//! The waiting line's figures (`cargo bench --bench line`), on a fleet
//! declared in the database (1,000 hosts, 8,000 GPUs, 64,000 cores):
//!
//! 1. The placement statement, p50/p99, over 1,000 reservations.
//! 2. With every GPU taken and 2,000 requests waiting: from a release's
//!    commit to the head of the line placed (the placement's event
//!    committed), through the real path: the release's NOTIFY wakes a line
//!    worker, whose pass places the head and re-numbers the rest.
//! 3. A pass's cost as the line grows (100, 1,000, 10,000 waiting), with
//!    one GPU freed before each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;
use vessel_orchestrator::clock::SystemClock;
use vessel_orchestrator::config::Config;
use vessel_orchestrator::line::LineWorker;
use vessel_orchestrator::placement;
use vessel_orchestrator::shutdown;
use vessel_testrig::figures::{self, ms, percentile, vessel};
use vessel_testrig::{Options, Rig};

const HOSTS: i64 = 1000;

async fn declare_fleet(db: &PgPool) -> Result<()> {
    vessel_testrig::figures::declare_fleet(db).await?;
    vessel_testrig::figures::declare_people(db).await?;
    sqlx::query("ANALYZE").execute(db).await?;
    Ok(())
}

/// Reserves 1,000 times through the statement alone; p50/p99.
async fn statement(db: &PgPool, running: &mut Vec<Uuid>) -> Result<(Duration, Duration)> {
    let mut times = Vec::new();
    for i in 0..1000 {
        let mut tx = db.begin().await?;
        let id = vessel(&mut tx, i, "pending").await?;
        let request = placement::Request {
            vessel_id: id,
            queue: "3090",
            gpus: 1,
            cpus: 4,
            memory_bytes: 16 << 30,
            on_host: None,
            not_on_host: None,
        };
        let start = Instant::now();
        let placed = placement::reserve(&mut tx, &request).await?;
        times.push(start.elapsed());
        if placed.is_none() {
            bail!("placement {i} found no room");
        }
        tx.commit().await?;
        running.push(id);
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

/// Takes every GPU left (8 per host), so the fleet is full.
async fn fill(db: &PgPool, running: &mut Vec<Uuid>) -> Result<()> {
    while let Some(id) = figures::occupy_one(db, running.len()).await? {
        running.push(id);
    }
    Ok(())
}

/// Tops the line up to `n` waiting requests.
async fn line_of(db: &PgPool, n: usize) -> Result<()> {
    let now: i64 = sqlx::query_scalar("SELECT count(*) FROM vessels WHERE state = 'pending'")
        .fetch_one(db)
        .await?;
    let mut tx = db.begin().await?;
    for i in now as usize..n {
        vessel(&mut tx, 100_000 + i, "pending").await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Frees one running vessel's reservation, as a burial does.
async fn release(db: &PgPool, running: &mut Vec<Uuid>) -> Result<()> {
    let id = running.swap_remove(running.len() / 2);
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM reservations WHERE vessel_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE vessels SET state = 'buried' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Who the last pass placed (the one `provisioning` vessel not yet seen).
async fn newly_placed(db: &PgPool, running: &mut Vec<Uuid>) -> Result<()> {
    let placed: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM vessels WHERE state = 'provisioning' AND NOT (id = ANY($1))",
    )
    .bind(&running[..])
    .fetch_all(db)
    .await?;
    running.extend(placed);
    Ok(())
}

/// Release → head placed, through NOTIFY and a worker's pass.
async fn release_to_placed(
    db: &PgPool,
    config: Arc<Config>,
    running: &mut Vec<Uuid>,
) -> Result<(Duration, Duration)> {
    let (stopper, stop) = shutdown::channel();
    let worker = LineWorker::new(db.clone(), config, Arc::new(SystemClock)).spawn(&stop);
    let mut events = sqlx::postgres::PgListener::connect_with(db).await?;
    events.listen("vessel_events").await?;
    // Let the worker's first pass over everything finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while events.next_buffered().is_some() {}
    let mut times = Vec::new();
    for _ in 0..200 {
        line_of(db, 2000).await?;
        let start = Instant::now();
        release(db, running).await?;
        let placed = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .context("no placement within 10 s of a release")??;
        times.push(start.elapsed());
        drop(placed);
        while events.next_buffered().is_some() {}
        newly_placed(db, running).await?;
    }
    stopper.stop();
    let _ = worker.await;
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

/// One pass after one release, at each line length.
async fn pass_costs(
    db: &PgPool,
    config: &Config,
    running: &mut Vec<Uuid>,
) -> Result<Vec<(usize, Duration, Duration)>> {
    let mut out = Vec::new();
    for n in [100usize, 1000, 10_000] {
        sqlx::query("UPDATE vessels SET state = 'buried' WHERE state = 'pending'")
            .execute(db)
            .await?;
        line_of(db, n).await?;
        // Requests join one at a time in life, each told its place by its
        // create; these were inserted at once, so one untimed pass tells
        // them all first.
        let mut tx = db.begin().await?;
        vessel_orchestrator::line::pass(&mut tx, config, "3090", Utc::now(), None).await?;
        tx.commit().await?;
        let mut times = Vec::new();
        for _ in 0..20 {
            release(db, running).await?;
            let start = Instant::now();
            let mut tx = db.begin().await?;
            let outcome =
                vessel_orchestrator::line::pass(&mut tx, config, "3090", Utc::now(), None).await?;
            tx.commit().await?;
            times.push(start.elapsed());
            if outcome.placed.is_empty() {
                bail!("a pass placed nothing after a release");
            }
            newly_placed(db, running).await?;
            line_of(db, n).await?;
        }
        times.sort();
        out.push((n, percentile(&times, 0.5), percentile(&times, 0.99)));
    }
    Ok(out)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    let mut rig = Rig::start_with(
        &[],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    // Only this bench's own worker and passes touch the line.
    if let Some(app) = rig.app.take() {
        app.stop().await;
    }
    let config = Arc::new(Config::from_toml_str(&rig.config_text)?);
    declare_fleet(&rig.db).await?;
    let mut running = Vec::new();

    let (p50, p99) = statement(&rig.db, &mut running).await?;
    println!("placement statement, 1,000 reservations into {HOSTS} hosts / 8,000 GPUs:");
    println!(
        "  reserve                  p50 {:7.2} ms   p99 {:7.2} ms",
        ms(p50),
        ms(p99)
    );

    fill(&rig.db, &mut running).await?;
    let (p50, p99) = release_to_placed(&rig.db, config.clone(), &mut running).await?;
    println!("release → head of a 2,000-request line placed (NOTIFY, pass, commit), 200 runs:");
    println!(
        "  release to placed        p50 {:7.2} ms   p99 {:7.2} ms",
        ms(p50),
        ms(p99)
    );

    println!("one pass after one release, by line length (20 runs each):");
    for (n, p50, p99) in pass_costs(&rig.db, &config, &mut running).await? {
        println!(
            "  {n:>6} waiting           p50 {:7.2} ms   p99 {:7.2} ms",
            ms(p50),
            ms(p99)
        );
    }
    Ok(())
}
