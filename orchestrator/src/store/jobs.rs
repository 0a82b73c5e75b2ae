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
    /// The lease's holder as the claim wrote it: the worker's name and a
    /// token of this claim. Every later write about the job names it, so a
    /// worker whose lease expired and was taken over cannot finish, retry
    /// or release the job the new holder is working on.
    pub holder: String,
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

/// Claims the next due job for `worker`. The lease names this claim (the
/// worker and a fresh token), not only the worker: the same worker claiming
/// the job again after losing it is a different holder.
pub async fn claim(db: &PgPool, worker: &str, lease: Duration) -> Result<Option<Job>, sqlx::Error> {
    let holder = format!("{worker}#{}", Uuid::new_v4());
    sqlx::query_as!(
        Job,
        r#"UPDATE jobs SET lease_until = now() + make_interval(secs => $2), leased_by = $1,
                         attempts = attempts + 1
         WHERE vessel_id = (
           SELECT vessel_id FROM jobs
           WHERE run_after <= now() AND (lease_until IS NULL OR lease_until < now())
           ORDER BY run_after
           LIMIT 1
           FOR UPDATE SKIP LOCKED)
         RETURNING vessel_id, generation, attempts, leased_by AS "holder!""#,
        holder,
        lease.as_secs_f64()
    )
    .fetch_optional(db)
    .await
}

/// Keeps a long step's lease alive; false if the lease was lost (another
/// claim holds the job, or it is gone).
pub async fn renew(db: &PgPool, job: &Job, lease: Duration) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
         WHERE vessel_id = $1 AND leased_by = $2",
        job.vessel_id,
        job.holder,
        lease.as_secs_f64()
    )
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Done with this generation. If newer work arrived meanwhile the job is
/// released to run again at once instead of being deleted. Only while this
/// claim holds the lease: false when another worker took the job over (its
/// outcome is the one that counts), and nothing is written.
pub async fn finish(db: &PgPool, job: &Job) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM jobs WHERE vessel_id = $1 AND generation = $2 AND leased_by = $3",
        job.vessel_id,
        job.generation,
        job.holder
    )
    .execute(db)
    .await?
    .rows_affected();
    if deleted == 1 {
        return Ok(true);
    }
    Ok(sqlx::query!(
        "UPDATE jobs SET lease_until = NULL, leased_by = NULL, run_after = now()
         WHERE vessel_id = $1 AND leased_by = $2",
        job.vessel_id,
        job.holder
    )
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Try again after `delay`, remembering why; false (nothing written) when
/// this claim no longer holds the lease.
pub async fn retry_later(
    db: &PgPool,
    job: &Job,
    delay: Duration,
    error: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE jobs SET lease_until = NULL, leased_by = NULL, last_error = $2,
           run_after = now() + make_interval(secs => $3)
         WHERE vessel_id = $1 AND leased_by = $4",
        job.vessel_id,
        error,
        delay.as_secs_f64(),
        job.holder
    )
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Hands a job back untouched (this worker is stopping): it runs again at
/// once elsewhere, and the interrupted attempt does not count against it.
/// Only if this claim still holds it; false when it did not.
pub async fn release(db: &PgPool, job: &Job) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE jobs SET lease_until = NULL, leased_by = NULL, run_after = now(),
           attempts = greatest(attempts - 1, 0)
         WHERE vessel_id = $1 AND leased_by = $2",
        job.vessel_id,
        job.holder
    )
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// A connection that hears `enqueue`'s notifications.
pub async fn listener(db: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
