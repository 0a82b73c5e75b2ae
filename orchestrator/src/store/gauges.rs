//! What `/metrics` reads from the database at each scrape: vessels by queue
//! and state, GPUs per queue, and the line per queue. Each is one grouped
//! statement over counters the schema already keeps (`hosts.gpu_count`,
//! `hosts.used_gpus`), so a scrape costs a few milliseconds at 1,000 hosts.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

pub struct VesselCount {
    pub queue: String,
    pub state: String,
    pub n: i64,
}

/// Every vessel row by queue and state, the buried ones included (their
/// count only grows; a dashboard shows the live states).
pub async fn vessels(db: &PgPool) -> Result<Vec<VesselCount>, sqlx::Error> {
    sqlx::query_as!(
        VesselCount,
        r#"SELECT queue AS "queue!", state AS "state!", count(*) AS "n!"
           FROM vessels GROUP BY queue, state ORDER BY queue, state"#
    )
    .fetch_all(db)
    .await
}

pub struct QueueGpus {
    pub queue: String,
    /// Every GPU the last probes found.
    pub total: i64,
    /// Held by a live vessel's reservation.
    pub allocated: i64,
    /// Placeable now: not held, on a host that is online and not draining.
    pub free: i64,
}

pub async fn gpus(db: &PgPool) -> Result<Vec<QueueGpus>, sqlx::Error> {
    sqlx::query_as!(
        QueueGpus,
        r#"SELECT queue AS "queue!",
                  coalesce(sum(gpu_count), 0)::bigint AS "total!",
                  coalesce(sum(used_gpus), 0)::bigint AS "allocated!",
                  coalesce(sum(gpu_count - used_gpus)
                           FILTER (WHERE online AND state = 'active'), 0)::bigint AS "free!"
           FROM hosts GROUP BY queue ORDER BY queue"#
    )
    .fetch_all(db)
    .await
}

pub struct QueueWaiting {
    pub queue: String,
    pub waiting: i64,
    /// When the request waiting longest joined the line.
    pub oldest_queued_at: Option<DateTime<Utc>>,
}

pub async fn waiting(db: &PgPool) -> Result<Vec<QueueWaiting>, sqlx::Error> {
    sqlx::query_as!(
        QueueWaiting,
        r#"SELECT queue AS "queue!", count(*) AS "waiting!",
                  min(coalesce(queued_at, created_at)) AS oldest_queued_at
           FROM vessels WHERE state = 'pending' GROUP BY queue ORDER BY queue"#
    )
    .fetch_all(db)
    .await
}
