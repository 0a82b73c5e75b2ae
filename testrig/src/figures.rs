//! What the benches share: percentiles of sorted timings, milliseconds, and
//! the declared fleet they measure against (1,000 hosts of 8 GPUs and 64
//! cores in queue `3090`, written straight into the database).

use std::time::Duration;

use anyhow::Result;
use sqlx::PgPool;

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
