//! One undertaker sweep over 10,000 running vessels on 1,000 hosts: rows in
//! Postgres, metrics in a real Prometheus (`cargo bench --bench undertaker`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use vessel_api::Span;
use vessel_orchestrator::clock::ManualClock;
use vessel_orchestrator::config::UndertakerConfig;
use vessel_orchestrator::hosts::HostPool;
use vessel_orchestrator::undertaker::Undertaker;
use vessel_orchestrator::work_hours::{WorkHours, WorkHoursConfig};
use vessel_testrig::prometheus::{Exporter, Prometheus};
use vessel_testrig::{Options, Rig};

const HOSTS: usize = 1_000;
const PER_HOST: usize = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let exporter = Exporter::start().await?;
    let mut uuids = Vec::with_capacity(HOSTS * PER_HOST);
    for h in 0..HOSTS {
        for g in 0..PER_HOST {
            let uuid = format!("GPU-bench-{h:04}-{g:02}");
            // A tenth of the GPUs are busy.
            exporter.set(&format!("host-{h}"), &uuid, if g == 0 { 40.0 } else { 0.0 });
            uuids.push(uuid);
        }
    }
    let prometheus = Prometheus::start(&exporter).await?;
    let idle: Vec<String> = uuids
        .iter()
        .filter(|u| !u.ends_with("-00"))
        .cloned()
        .collect();
    prometheus.wait_for("30s", &idle, 0.0).await?;

    let db = &rig.db;
    sqlx::query("INSERT INTO users (id, unix_name, uid) VALUES ('bench', 'bench', 30000)")
        .execute(db)
        .await?;
    sqlx::query(
        "INSERT INTO hosts (name, queue, cores, memory_bytes, online)
         SELECT 'host-' || n, 'bench', 64, 512::bigint << 30, true FROM generate_series(0, $1 - 1) n",
    )
    .bind(HOSTS as i32)
    .execute(db)
    .await?;
    sqlx::query(
        "INSERT INTO vessels (id, name, owner_id, queue, image, gpus, cpus, memory_bytes, state,
                              host_id, gpu_uuids, expires_at)
         SELECT gen_random_uuid(), 'v' || h.id || '-' || g, 'bench', 'bench', 'x', 1, 1, 1 << 30, 'running',
                h.id, ARRAY['GPU-bench-' || lpad((h.id - m.min)::text, 4, '0') || '-' || lpad(g::text, 2, '0')],
                '2027-01-01'
         FROM hosts h, generate_series(0, $1 - 1) g, (SELECT min(id) FROM hosts) m",
    )
    .bind(PER_HOST as i32)
    .execute(db)
    .await?;
    sqlx::query("ANALYZE").execute(db).await?;

    let clock = ManualClock::at("2026-11-30T09:00:00Z".parse()?);
    let config = UndertakerConfig {
        prometheus_url: Some(prometheus.url.clone()),
        window: Span(Duration::from_secs(30)),
        ..UndertakerConfig::default()
    };
    let undertaker = Undertaker::new(
        db.clone(),
        config,
        WorkHours::parse(&WorkHoursConfig::default()).map_err(|e| anyhow::anyhow!("{e:?}"))?,
        Arc::new(clock.clone()),
        Arc::new(HostPool::new(&[], Duration::from_secs(5))),
    );
    // The first sweep sets the baseline; the second is the steady state.
    undertaker.sweep().await?;
    clock.advance(chrono::Duration::minutes(30));
    let promql = Instant::now();
    let metrics = undertaker
        .gpu_utilisation()
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let promql = promql.elapsed();
    let start = Instant::now();
    let report = undertaker.sweep().await?;
    let wall = start.elapsed();
    println!(
        "undertaker sweep over {} running vessels on {HOSTS} hosts ({} GPU series):",
        report.vessels,
        metrics.len()
    );
    println!(
        "  the PromQL query alone     {:8.1} ms",
        promql.as_secs_f64() * 1000.0
    );
    println!(
        "  the whole sweep            {:8.1} ms   (idle {}, unknown {}, goal < 2000 ms)",
        wall.as_secs_f64() * 1000.0,
        report.idle,
        report.unknown
    );
    Ok(())
}
