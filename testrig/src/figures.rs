//! What the benches share: percentiles of sorted timings, milliseconds, and
//! the declared fleet they measure against (1,000 hosts of 8 GPUs and 64
//! cores in queue `3090`, written straight into the database).

use std::time::Duration;

use anyhow::Result;
use sqlx::PgPool;
use uuid::Uuid;
use vessel_orchestrator::placement;

/// The `p` quantile (0..=1) of timings sorted ascending.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// 1,000 hosts, 8,000 GPUs (4 per NUMA node), 64,000 cores, all online.
pub async fn declare_fleet(db: &PgPool) -> Result<()> {
    for sql in [
        "INSERT INTO hosts (name, queue, cores, memory_bytes, online)
         SELECT 'bench-' || n, '3090', 64, 512::bigint << 30, true FROM generate_series(1, 1000) n",
        "INSERT INTO gpus (host_id, idx, uuid, model, numa_node)
         SELECT h.id, i, 'GPU-bench-' || h.id || '-' || i, 'RTX 3090', i / 4
         FROM hosts h, generate_series(0, 7) i",
        "INSERT INTO host_cores (host_id, core, numa_node)
         SELECT h.id, c, c / 32 FROM hosts h, generate_series(0, 63) c",
    ] {
        sqlx::query(sql).execute(db).await?;
    }
    Ok(())
}

/// 100 people, `bench0` … `bench99`, to own the benches' vessels.
pub async fn declare_people(db: &PgPool) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, unix_name, uid)
         SELECT 'bench' || n, 'bench' || n, 30000 + n FROM generate_series(0, 99) n",
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A one-GPU vessel row of `bench{n % 100}` in `state`, in line (a
/// reservation or a pass places it).
pub async fn vessel(conn: &mut sqlx::PgConnection, n: usize, state: &str) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO vessels (id, name, owner_id, queue, image, gpus, cpus, memory_bytes, state,
                              expires_at, line_seq, queued_at, wait_until)
         VALUES ($1, 'b' || replace($1::text, '-', ''), 'bench' || ($2 % 100), '3090', 'x', 1, 4, 16::bigint << 30, $3,
                 now() + interval '1 day', nextval('vessel_line_seq'), now(), now() + interval '1 day')",
    )
    .bind(id)
    .bind(n as i64)
    .bind(state)
    .execute(conn)
    .await?;
    Ok(id)
}

/// A vessel `n` holding one GPU, one core and 1 GiB through the placement
/// statement; None when nothing is left.
pub async fn occupy_one(db: &PgPool, n: usize) -> Result<Option<Uuid>> {
    let mut tx = db.begin().await?;
    let id = vessel(&mut tx, n, "pending").await?;
    let request = placement::Request {
        vessel_id: id,
        queue: "3090",
        gpus: 1,
        cpus: 1,
        memory_bytes: 1 << 30,
        on_host: None,
        not_on_host: None,
    };
    if placement::reserve(&mut tx, &request).await?.is_none() {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(id))
}
