//! `job_ticks` and the per-job advisory lock: what makes a periodic job run
//! once per tick across replicas. The lock keeps a long run from
//! overlapping the next tick's run on another replica; the tick's row
//! makes the replica that fired a few milliseconds later skip a tick the
//! first one already ran (a lock alone would let it in once released).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// Takes `job`'s lock on `conn` (a session lock: it lives as long as the
/// connection holds it). False when another replica's run holds it. The
/// two-key form keeps it apart from the single-key locks elsewhere.
pub async fn try_lock(conn: &mut PgConnection, job: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock(hashtext('vessel_job'), hashtext($1)) AS "got!""#,
        job
    )
    .fetch_one(conn)
    .await
}

pub async fn unlock(conn: &mut PgConnection, job: &str) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT pg_advisory_unlock(hashtext('vessel_job'), hashtext($1))",
        job
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Claims `tick` of `job` for `instance`; false when a replica has already
/// claimed it.
pub async fn claim(
    conn: &mut PgConnection,
    job: &str,
    tick: DateTime<Utc>,
    instance: &str,
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query_scalar!(
        "INSERT INTO job_ticks (job, tick, instance) VALUES ($1, $2, $3)
         ON CONFLICT (job, tick) DO NOTHING RETURNING 1 AS one",
        job,
        tick,
        instance
    )
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// Ticks older than `secs` go: they only guard the tick they name.
pub async fn prune(db: &PgPool, secs: f64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM job_ticks WHERE ran_at < now() - make_interval(secs => $1)",
        secs
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
