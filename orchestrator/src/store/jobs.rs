//! The conductor's queue in Postgres: claimed with `FOR UPDATE SKIP LOCKED`
//! under a lease, woken by `LISTEN/NOTIFY`, retried with backoff.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub const CHANNEL: &str = "vessel_jobs";

#[derive(Debug, Clone)]
pub struct Job {
    pub vessel_id: Uuid,
    pub generation: i64,
    pub attempts: i32,
}

/// Asks for work on a vessel. A job already queued or running is bumped to a
/// new generation, so its worker looks again before finishing.
pub async fn enqueue(conn: &mut PgConnection, vessel_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO jobs (vessel_id) VALUES ($1)
         ON CONFLICT (vessel_id) DO UPDATE SET generation = jobs.generation + 1,
           run_after = now(), attempts = 0, last_error = NULL",
        vessel_id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "SELECT pg_notify($1, $2::text)",
        CHANNEL,
        vessel_id.to_string()
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn claim(db: &PgPool, worker: &str, lease: Duration) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query_as!(
        Job,
        "UPDATE jobs SET lease_until = now() + make_interval(secs => $2), leased_by = $1,
                         attempts = attempts + 1
         WHERE vessel_id = (
           SELECT vessel_id FROM jobs
           WHERE run_after <= now() AND (lease_until IS NULL OR lease_until < now())
           ORDER BY run_after
           LIMIT 1
           FOR UPDATE SKIP LOCKED)
         RETURNING vessel_id, generation, attempts",
        worker,
        lease.as_secs_f64()
    )
    .fetch_optional(db)
    .await
}

/// Keeps a long step's lease alive; false if the lease was lost.
pub async fn renew(
    db: &PgPool,
    vessel_id: Uuid,
    worker: &str,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
         WHERE vessel_id = $1 AND leased_by = $2",
        vessel_id,
        worker,
        lease.as_secs_f64()
    )
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Done with this generation. If newer work arrived meanwhile the job is
/// released to run again at once instead of being deleted.
pub async fn finish(db: &PgPool, job: &Job) -> Result<(), sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM jobs WHERE vessel_id = $1 AND generation = $2",
        job.vessel_id,
        job.generation
    )
    .execute(db)
    .await?
    .rows_affected();
    if deleted == 0 {
        sqlx::query!(
            "UPDATE jobs SET lease_until = NULL, leased_by = NULL, run_after = now()
             WHERE vessel_id = $1",
            job.vessel_id
        )
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Try again after `delay`, remembering why.
pub async fn retry_later(
    db: &PgPool,
    job: &Job,
    delay: Duration,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE jobs SET lease_until = NULL, leased_by = NULL, last_error = $2,
           run_after = now() + make_interval(secs => $3)
         WHERE vessel_id = $1",
        job.vessel_id,
        error,
        delay.as_secs_f64()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Hands a job back untouched (this worker is stopping): it runs again at
/// once elsewhere, and the interrupted attempt does not count against it.
/// Only if this worker still holds it.
pub async fn release(db: &PgPool, job: &Job, worker: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE jobs SET lease_until = NULL, leased_by = NULL, run_after = now(),
           attempts = greatest(attempts - 1, 0)
         WHERE vessel_id = $1 AND leased_by = $2",
        job.vessel_id,
        worker
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A connection that hears `enqueue`'s notifications.
pub async fn listener(db: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
