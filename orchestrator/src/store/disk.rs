//! A vessel's writable layer as the undertaker measured it, and its warning
//! for being over its queue's `disk` limit (in `vessel_idle`, beside the
//! idle ledger).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Records a measurement of the vessel's writable layer.
pub async fn record(
    db: &PgPool,
    id: Uuid,
    used: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO vessel_idle (vessel_id, disk_used_bytes, disk_read_at) VALUES ($1, $2, $3)
         ON CONFLICT (vessel_id) DO UPDATE SET disk_used_bytes = $2, disk_read_at = $3",
        id,
        used,
        at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The warning went out at `at`: recorded only for a running vessel not yet
/// warned. True when recorded: only then is the warning sent.
pub async fn mark_warned(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO vessel_idle (vessel_id, disk_warned_at)
             SELECT id, $2 FROM vessels WHERE id = $1 AND state = 'running'
         ON CONFLICT (vessel_id) DO UPDATE SET disk_warned_at = $2
           WHERE vessel_idle.disk_warned_at IS NULL
         RETURNING vessel_id",
        id,
        at
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// Back under the limit: the warning no longer stands.
pub async fn withdraw_warning(db: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE vessel_idle SET disk_warned_at = NULL WHERE vessel_id = $1",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Locks a running vessel that was warned for its disk, for stopping it.
/// False when it is no longer running or its warning was withdrawn.
pub async fn lock_for_stop(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "SELECT v.id FROM vessels v JOIN vessel_idle i ON i.vessel_id = v.id
         WHERE v.id = $1 AND v.state = 'running' AND i.disk_warned_at IS NOT NULL
         FOR UPDATE OF v",
        id
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// What is known of each vessel's writable layer, and whether its host's
/// engine sizes it.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub vessel_id: Uuid,
    pub sized: bool,
    pub used: Option<i64>,
    pub measured_at: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
}

pub async fn ledgers(db: &PgPool, ids: &[Uuid]) -> Result<Vec<Ledger>, sqlx::Error> {
    sqlx::query_as!(
        Ledger,
        r#"SELECT v.id AS "vessel_id!", coalesce(h.disk_quota, false) AS "sized!",
                  i.disk_used_bytes AS "used?", i.disk_read_at AS "measured_at?",
                  i.disk_warned_at AS "warned_at?"
           FROM vessels v
           LEFT JOIN hosts h ON h.id = v.host_id
           LEFT JOIN vessel_idle i ON i.vessel_id = v.id
           WHERE v.id = ANY($1)"#,
        ids
    )
    .fetch_all(db)
    .await
}
