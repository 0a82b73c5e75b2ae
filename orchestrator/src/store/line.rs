//! The waiting line's rows: the per-queue lock a placement pass holds,
//! what a pass reads (hosts with their free counters, the line, owners' use
//! and limits), and what it writes (places, reasons, holds, expiries).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use vessel_api::fleet::HostState;

use crate::lineup::{Ask, HostCap, Release, Usage, Waiter};

/// The channel everything that may let a request in notifies, with the
/// queue's name as the payload (see the line migration's triggers).
pub const CHANNEL: &str = "vessel_line";

/// Serialises placement in one queue across replicas until the transaction
/// ends. Hosts belong to one queue, so no two transactions ever reserve on
/// the same host at once and a pass never loses a race it must retry.
pub async fn lock(conn: &mut PgConnection, queue: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtext('vessel_line'), hashtext($1))",
        queue
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn hosts(conn: &mut PgConnection, queue: &str) -> Result<Vec<HostCap>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, name, state, online, gpu_count, cores, memory_bytes,
                  used_gpus, used_cores, used_memory
           FROM hosts WHERE queue = $1 ORDER BY name"#,
        queue
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| HostCap {
            id: r.id,
            name: r.name,
            active: r.state == HostState::Active.as_str(),
            online: r.online,
            gpus: r.gpu_count as i64,
            cores: r.cores as i64,
            memory: r.memory_bytes,
            free_gpus: (r.gpu_count - r.used_gpus) as i64,
            free_cores: (r.cores - r.used_cores) as i64,
            free_memory: r.memory_bytes - r.used_memory,
        })
        .collect())
}

/// A waiting request with what its owner was last told.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub waiter: Waiter,
    pub name: String,
    pub owner_unix: String,
    pub position: Option<i32>,
    pub reason: Option<String>,
    pub wait_until: DateTime<Utc>,
}

/// The line of a queue, in order.
pub async fn waiting(conn: &mut PgConnection, queue: &str) -> Result<Vec<Waiting>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT v.id, v.name, v.owner_id, u.unix_name, v.gpus, v.cpus, v.memory_bytes,
                  v.queued_at AS "queued_at!", v.wait_until AS "wait_until!",
                  v.held_host_id, v.line_position, v.reason, v.disk_host_id, v.wake_anywhere
           FROM vessels v JOIN users u ON u.id = v.owner_id
           WHERE v.queue = $1 AND v.state = 'pending'
           ORDER BY v.line_seq"#,
        queue
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Waiting {
            waiter: Waiter {
                id: r.id,
                owner_id: r.owner_id,
                ask: Ask {
                    gpus: r.gpus as i64,
                    cpus: r.cpus as i64,
                    memory: r.memory_bytes,
                },
                queued_at: r.queued_at,
                held_host: r.held_host_id,
                pin: r.disk_host_id.filter(|_| !r.wake_anywhere),
                home: r.disk_host_id.filter(|_| r.wake_anywhere),
            },
            name: r.name,
            owner_unix: r.unix_name,
            position: r.line_position,
            reason: r.reason,
            wait_until: r.wait_until,
        })
        .collect())
}

/// What each of `owners` holds in the queue: placed vessels, by their
/// reservations (counted by a trigger into `queue_usage`).
pub async fn usage(
    conn: &mut PgConnection,
    queue: &str,
    owners: &[String],
) -> Result<Vec<(String, Usage)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT owner_id, gpus::bigint AS "gpus!", vessels::bigint AS "vessels!"
           FROM queue_usage WHERE queue = $1 AND owner_id = ANY($2)"#,
        queue,
        owners
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.owner_id,
                Usage {
                    gpus: r.gpus,
                    vessels: r.vessels,
                },
            )
        })
        .collect())
}

/// An admin's override of one owner's limits in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub user_id: String,
    pub max_gpus: Option<i32>,
    pub max_vessels: Option<i32>,
}

pub async fn overrides(conn: &mut PgConnection, queue: &str) -> Result<Vec<Override>, sqlx::Error> {
    sqlx::query_as!(
        Override,
        "SELECT user_id, max_gpus, max_vessels FROM user_limits WHERE queue = $1",
        queue
    )
    .fetch_all(conn)
    .await
}

pub async fn override_of(
    conn: &mut PgConnection,
    user_id: &str,
    queue: &str,
) -> Result<Option<Override>, sqlx::Error> {
    sqlx::query_as!(
        Override,
        "SELECT user_id, max_gpus, max_vessels FROM user_limits WHERE user_id = $1 AND queue = $2",
        user_id,
        queue
    )
    .fetch_optional(conn)
    .await
}

/// What everyone holds, per queue (the counters, where not zero).
pub async fn all_usage(db: &sqlx::PgPool) -> Result<Vec<(String, String, Usage)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT owner_id, queue, gpus::bigint AS "gpus!", vessels::bigint AS "vessels!"
           FROM queue_usage WHERE gpus > 0 OR vessels > 0"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let usage = Usage {
                gpus: r.gpus,
                vessels: r.vessels,
            };
            (r.owner_id, r.queue, usage)
        })
        .collect())
}

/// Every override, with its queue.
pub async fn all_overrides(db: &sqlx::PgPool) -> Result<Vec<(String, Override)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT user_id, queue, max_gpus, max_vessels FROM user_limits")
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let o = Override {
                user_id: r.user_id,
                max_gpus: r.max_gpus,
                max_vessels: r.max_vessels,
            };
            (r.queue, o)
        })
        .collect())
}

/// Sets (or, with both `None`, removes) an override, and wakes the line.
pub async fn set_override(
    conn: &mut PgConnection,
    user_id: &str,
    queue: &str,
    max_gpus: Option<i32>,
    max_vessels: Option<i32>,
) -> Result<(), sqlx::Error> {
    if max_gpus.is_none() && max_vessels.is_none() {
        sqlx::query!(
            "DELETE FROM user_limits WHERE user_id = $1 AND queue = $2",
            user_id,
            queue
        )
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query!(
            "INSERT INTO user_limits (user_id, queue, max_gpus, max_vessels) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, queue) DO UPDATE SET max_gpus = $3, max_vessels = $4",
            user_id,
            queue,
            max_gpus,
            max_vessels
        )
        .execute(&mut *conn)
        .await?;
    }
    wake(conn, queue).await
}

/// Asks every replica's line worker for a pass over `queue` (at commit).
pub async fn wake(conn: &mut PgConnection, queue: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_notify('vessel_line', $1)", queue)
        .execute(conn)
        .await?;
    Ok(())
}

/// Puts a just-inserted vessel in line, at the back.
pub async fn join(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    wait_until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE vessels SET state = 'pending', line_seq = nextval('vessel_line_seq'),
                queued_at = $2, wait_until = $3
         WHERE id = $1",
        id,
        now,
        wait_until
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks a waiting request before it is placed, so a cancel that lands
/// meanwhile either wins first (and the request is skipped) or waits for
/// the placement and then stops a placed vessel.
pub async fn still_waiting(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "SELECT 1 AS one FROM vessels WHERE id = $1 AND state = 'pending' FOR UPDATE",
        id
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// Ends the requests of a queue that waited past their deadline; their ids.
pub async fn expire_overdue(
    conn: &mut PgConnection,
    queue: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE vessels SET state = 'expired', updated_at = now(), ended_at = now(),
                held_host_id = NULL,
                reason = 'waited in line for ' || queue || ' until '
                         || to_char(wait_until AT TIME ZONE 'UTC', 'Dy DD Mon HH24:MI') || ' UTC'
                         || ' without room freeing up'
         WHERE queue = $1 AND state = 'pending' AND wait_until <= $2
           AND disk_host_id IS NULL
         RETURNING id",
        queue,
        now
    )
    .fetch_all(conn)
    .await
}

/// Writes the places, reasons and the hold a pass decided, for the rows
/// that changed.
pub async fn set_places(
    conn: &mut PgConnection,
    ids: &[Uuid],
    positions: &[i32],
    reasons: &[String],
    held: &[Option<i64>],
) -> Result<(), sqlx::Error> {
    // `unnest` cannot take an array with nulls through sqlx's typed array of
    // Option, so the hold travels as 0 for "none".
    let held: Vec<i64> = held.iter().map(|h| h.unwrap_or(0)).collect();
    sqlx::query!(
        "UPDATE vessels v SET line_position = x.pos, reason = x.reason,
                held_host_id = nullif(x.held, 0)
         FROM unnest($1::uuid[], $2::int[], $3::text[], $4::bigint[]) AS x(id, pos, reason, held)
         WHERE v.id = x.id AND v.state = 'pending'",
        ids,
        positions,
        reasons,
        &held
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a waiting request to the front of its queue's line. False if it
/// is not waiting.
pub async fn to_front(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE vessels SET line_seq = (SELECT min(line_seq) - 1 FROM vessels w
                                        WHERE w.queue = vessels.queue AND w.state = 'pending'),
                updated_at = now()
         WHERE id = $1 AND state = 'pending'",
        id
    )
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// What holds each host of a queue and until when, for estimates.
pub async fn releases(
    conn: &mut PgConnection,
    queue: &str,
) -> Result<Vec<(i64, Release)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT r.host_id, v.expires_at, r.gpus, r.cpus, r.memory_bytes
           FROM reservations r JOIN vessels v ON v.id = r.vessel_id
           JOIN hosts h ON h.id = r.host_id WHERE h.queue = $1"#,
        queue
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.host_id,
                Release {
                    expires_at: r.expires_at,
                    gpus: r.gpus as i64,
                    cpus: r.cpus as i64,
                    memory: r.memory_bytes,
                },
            )
        })
        .collect())
}

/// Queues with someone waiting: the line's length, the earliest deadline,
/// and the earliest arrival among requests holding nothing yet (when a
/// hold may become due).
pub struct QueueLine {
    pub queue: String,
    pub waiting: i64,
    pub next_deadline: DateTime<Utc>,
    pub oldest_unheld: Option<DateTime<Utc>>,
}

pub async fn lines(db: &PgPool) -> Result<Vec<QueueLine>, sqlx::Error> {
    sqlx::query_as!(
        QueueLine,
        r#"SELECT queue, count(*) AS "waiting!", min(wait_until) AS "next_deadline!",
                  min(queued_at) FILTER (WHERE held_host_id IS NULL) AS oldest_unheld
           FROM vessels WHERE state = 'pending' GROUP BY queue ORDER BY queue"#
    )
    .fetch_all(db)
    .await
}

/// How many requests `owner` has waiting, in every queue.
pub async fn pending_of(conn: &mut PgConnection, owner: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM vessels WHERE owner_id = $1 AND state = 'pending'"#,
        owner
    )
    .fetch_one(conn)
    .await
}

/// Seconds each request placed from the line waited, for the histogram.
pub async fn waited(
    conn: &mut PgConnection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<f64>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT extract(epoch FROM $2 - queued_at)::float8 AS "secs!"
           FROM vessels WHERE id = ANY($1) AND queued_at IS NOT NULL"#,
        ids,
        now
    )
    .fetch_all(conn)
    .await
}

pub async fn listener(db: &PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(db).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
