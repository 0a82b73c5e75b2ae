//! `vessel_idle`: the undertaker's ledger per vessel (idle work-seconds,
//! warnings, Keep, the last CPU reading), and the advisory lock that lets
//! one replica sweep at a time.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One replica sweeps at a time: the lock every sweep takes.
const SWEEP_LOCK: i64 = 0x7665_7373_656c; // "vessel"

/// A running vessel with what the last sweep recorded about it.
#[derive(Debug, Clone)]
pub struct RunningVessel {
    pub id: Uuid,
    pub name: String,
    pub gpu_uuids: Vec<String>,
    pub cores: Vec<i32>,
    pub expires_at: DateTime<Utc>,
    pub host: Option<String>,
    pub idle_secs: Option<f64>,
    pub last_sweep_at: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
    pub keep_until: Option<DateTime<Utc>>,
    pub expiry_warned_at: Option<DateTime<Utc>>,
    pub queue: String,
    /// Its host's engine sizes its writable layer (nothing to measure).
    pub disk_quota: bool,
    /// Found over its queue's `disk` limit at this sweep.
    pub disk_warned_at: Option<DateTime<Utc>>,
}

/// Takes the sweep lock on `conn` (a session lock: it lives as long as the
/// connection holds it). False when another sweep holds it.
pub async fn try_lock_sweep(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!("SELECT pg_try_advisory_lock($1) AS \"got!\"", SWEEP_LOCK)
        .fetch_one(conn)
        .await
}

pub async fn unlock_sweep(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// Every running vessel and its ledger, for one sweep.
pub async fn running(db: &PgPool) -> Result<Vec<RunningVessel>, sqlx::Error> {
    sqlx::query_as!(
        RunningVessel,
        r#"SELECT v.id, v.name, v.gpu_uuids, v.cores, v.expires_at, h.name AS "host?",
                      i.idle_secs AS "idle_secs?", i.last_sweep_at, i.warned_at,
                      i.keep_until, i.expiry_warned_at, v.queue,
                      coalesce(h.disk_quota, false) AS "disk_quota!", i.disk_warned_at
               FROM vessels v
               LEFT JOIN hosts h ON h.id = v.host_id
               LEFT JOIN vessel_idle i ON i.vessel_id = v.id
               WHERE v.state = 'running'"#
    )
    .fetch_all(db)
    .await
}

/// The CPU reading before this one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuReading {
    pub before_ns: i64,
    /// Seconds between the two readings, on the database's clock: a rate
    /// needs a real interval, not the undertaker's (possibly moved) clock.
    pub elapsed_secs: f64,
}

/// Records a vessel's cumulative CPU time and returns the reading it
/// replaces, if there was one. Every sub-statement sees the same snapshot,
/// so `before` is the row as it was.
pub async fn swap_cpu_reading(
    db: &PgPool,
    id: Uuid,
    cpu_ns: i64,
) -> Result<Option<CpuReading>, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH before AS (SELECT cpu_ns, cpu_read_at FROM vessel_idle WHERE vessel_id = $1)
           INSERT INTO vessel_idle (vessel_id, cpu_ns, cpu_read_at) VALUES ($1, $2, now())
           ON CONFLICT (vessel_id) DO UPDATE SET cpu_ns = $2, cpu_read_at = now()
           RETURNING (SELECT cpu_ns FROM before) AS before_ns,
                     (SELECT extract(epoch FROM now() - cpu_read_at)::float8 FROM before)
                       AS elapsed_secs"#,
        id,
        cpu_ns
    )
    .fetch_one(db)
    .await?;
    Ok(row
        .before_ns
        .zip(row.elapsed_secs)
        .map(|(before_ns, elapsed_secs)| CpuReading {
            before_ns,
            elapsed_secs,
        }))
}

/// The idle warning went out at `at`: recorded only if the vessel is still
/// unwarned and its Keep is as the sweep read it (`seen_keep`), so a Keep
/// pressed mid-sweep is not answered with a warning. True when recorded:
/// only then is the warning sent.
pub async fn mark_warned(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
    seen_keep: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO vessel_idle (vessel_id, warned_at, keep_until) VALUES ($1, $2, $3)
         ON CONFLICT (vessel_id) DO UPDATE SET warned_at = $2
           WHERE vessel_idle.warned_at IS NULL
             AND vessel_idle.keep_until IS NOT DISTINCT FROM $3
         RETURNING vessel_id",
        id,
        at,
        seen_keep
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// The end-of-lifetime warning went out at `at`: recorded only while the
/// vessel's lifetime still ends at `seen_expires` (an Extend pressed
/// mid-sweep wins) and it was not warned yet. True when recorded.
pub async fn mark_expiry_warned(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
    seen_expires: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO vessel_idle (vessel_id, expiry_warned_at)
             SELECT id, $2 FROM vessels WHERE id = $1 AND expires_at = $3 AND state = 'running'
         ON CONFLICT (vessel_id) DO UPDATE SET expiry_warned_at = $2
           WHERE vessel_idle.expiry_warned_at IS NULL
         RETURNING vessel_id",
        id,
        at,
        seen_expires
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// What the sweep read about a vessel and decided on: the burial goes ahead
/// only while the rows still say so.
#[derive(Debug, Clone, Copy)]
pub struct AsRead {
    pub expires_at: DateTime<Utc>,
    pub warned_at: Option<DateTime<Utc>>,
    pub keep_until: Option<DateTime<Utc>>,
}

/// Locks a running vessel for its idle burial if its ledger is still as the
/// sweep read it: a Keep (which moves `keep_until` and withdraws the
/// warning) or an Extend (which moves `expires_at`) that landed after the
/// read wins; one that comes after this waits for the burial and finds the
/// vessel stopping. False when the burial must not go ahead.
pub async fn lock_for_idle_burial(
    conn: &mut PgConnection,
    id: Uuid,
    read: &AsRead,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "SELECT v.id FROM vessels v JOIN vessel_idle i ON i.vessel_id = v.id
         WHERE v.id = $1 AND v.state = 'running' AND v.expires_at = $2
           AND i.warned_at IS NOT DISTINCT FROM $3 AND i.keep_until IS NOT DISTINCT FROM $4
         FOR UPDATE",
        id,
        read.expires_at,
        read.warned_at,
        read.keep_until
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// Locks a running vessel for its end-of-lifetime burial if its lifetime
/// is still over at `now` (an Extend that landed after the read wins).
pub async fn lock_for_expiry(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM vessels WHERE id = $1 AND state = 'running' AND expires_at <= $2
         FOR UPDATE",
        id,
        now
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// The counters of one sweep, written together.
#[derive(Debug, Default)]
pub struct Counters {
    ids: Vec<Uuid>,
    idle: Vec<f64>,
    /// Each vessel's Keep as the sweep read it.
    keep: Vec<Option<DateTime<Utc>>>,
    /// Vessels whose warning is withdrawn (used or kept).
    withdrawn: Vec<Uuid>,
}

impl Counters {
    pub fn push(
        &mut self,
        id: Uuid,
        idle_secs: f64,
        withdraw_warning: bool,
        seen_keep: Option<DateTime<Utc>>,
    ) {
        self.ids.push(id);
        self.idle.push(idle_secs);
        self.keep.push(seen_keep);
        if withdraw_warning {
            self.withdrawn.push(id);
        }
    }
}

/// One statement for all counters: 10,000 vessels must not mean 10,000
/// round trips. Then the withdrawn warnings, in one more. A vessel whose
/// Keep changed since the sweep read it keeps what the Keep wrote (its
/// counter at zero): the sweep's figure is from before it.
pub async fn record_counters(
    db: &PgPool,
    counters: &Counters,
    swept_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO vessel_idle (vessel_id, idle_secs, last_sweep_at, keep_until)
             SELECT id, idle, $3, keep
               FROM unnest($1::uuid[], $2::float8[], $4::timestamptz[]) AS t(id, idle, keep)
             ON CONFLICT (vessel_id) DO UPDATE SET idle_secs = excluded.idle_secs,
               last_sweep_at = excluded.last_sweep_at
             WHERE vessel_idle.keep_until IS NOT DISTINCT FROM excluded.keep_until",
        &counters.ids,
        &counters.idle,
        swept_at,
        &counters.keep as &[Option<DateTime<Utc>>]
    )
    .execute(db)
    .await?;
    sqlx::query!(
            "UPDATE vessel_idle SET warned_at = NULL WHERE vessel_id = ANY($1) AND warned_at IS NOT NULL",
            &counters.withdrawn
        )
        .execute(db)
        .await?;
    Ok(())
}

/// Keep: no idle accrual until `until`, the counter back at zero.
pub async fn keep(db: &PgPool, id: Uuid, until: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query!(
            "INSERT INTO vessel_idle (vessel_id, keep_until) VALUES ($1, $2)
             ON CONFLICT (vessel_id) DO UPDATE SET keep_until = $2, idle_secs = 0, warned_at = NULL",
            id,
            until
        )
        .execute(db)
        .await?;
    Ok(())
}

/// The ledger of each of `ids` that has one, for showing: idle
/// work-seconds, the warning, the Keep.
pub async fn ledgers(
    db: &PgPool,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, vessel_api::vessels::IdleView)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT vessel_id, coalesce(idle_secs, 0)::float8 AS "idle_secs!", warned_at, keep_until
           FROM vessel_idle WHERE vessel_id = ANY($1)"#,
        ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let view = vessel_api::vessels::IdleView {
                idle_secs: r.idle_secs.max(0.0) as u64,
                warned_at: r.warned_at,
                kept_until: r.keep_until,
            };
            (r.vessel_id, view)
        })
        .collect())
}

/// A hibernated vessel, as the sweep judges it.
#[derive(Debug, Clone)]
pub struct Sleeper {
    pub id: Uuid,
    pub name: String,
    pub owner_id: String,
    pub queue: String,
    pub gpus: i32,
    pub hibernated_at: DateTime<Utc>,
    pub burial_warned_at: Option<DateTime<Utc>>,
}

/// Every hibernated vessel, by owner and queue, the newest asleep first.
pub async fn sleepers(db: &PgPool) -> Result<Vec<Sleeper>, sqlx::Error> {
    sqlx::query_as!(
        Sleeper,
        r#"SELECT v.id, v.name, v.owner_id, v.queue, v.gpus, v.hibernated_at AS "hibernated_at!",
                  i.burial_warned_at AS "burial_warned_at?"
           FROM vessels v LEFT JOIN vessel_idle i ON i.vessel_id = v.id
           WHERE v.state = 'hibernated' AND v.hibernated_at IS NOT NULL
           ORDER BY v.owner_id, v.queue, v.hibernated_at DESC"#
    )
    .fetch_all(db)
    .await
}

/// The burial warning went out at `at`: recorded only for a vessel still
/// asleep and not warned yet. True when recorded.
pub async fn mark_burial_warned(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO vessel_idle (vessel_id, burial_warned_at)
             SELECT id, $2 FROM vessels WHERE id = $1 AND state = 'hibernated'
         ON CONFLICT (vessel_id) DO UPDATE SET burial_warned_at = $2
           WHERE vessel_idle.burial_warned_at IS NULL
         RETURNING vessel_id",
        id,
        at
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// A woken vessel starts its idle ledger afresh: the warnings and counts
/// from before it slept are not about it now.
pub async fn reset(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE vessel_idle SET idle_secs = 0, last_sweep_at = NULL, warned_at = NULL,
                keep_until = NULL, burial_warned_at = NULL, disk_warned_at = NULL,
                cpu_ns = NULL, cpu_read_at = NULL
         WHERE vessel_id = $1",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}
