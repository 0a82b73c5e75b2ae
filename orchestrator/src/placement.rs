//! The one reservation statement: pick a host, its GPUs, cores, memory and an
//! address, and claim them all, atomically.
//!
//! Best fit first (the host left with the fewest free GPUs, then cores, then
//! memory), then GPUs on one NUMA node (the fullest node that holds the whole
//! request), then cores on the GPUs' node. Placements in a queue are
//! serialised by the line's lock; should anything else claim a device, the
//! claim tables' primary keys and the memory trigger still reject the
//! second claim.

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;
use vessel_api::fleet::HostState;

use crate::units::ByteSize;

#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub vessel_id: Uuid,
    pub queue: &'a str,
    pub gpus: i32,
    pub cpus: i32,
    pub memory_bytes: i64,
    /// Only this host (the line chose it).
    pub on_host: Option<i64>,
    /// Never this host (it is held for a request waiting longer).
    pub not_on_host: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    pub host: String,
    pub address: Option<String>,
    pub gpu_uuids: Vec<String>,
    pub cores: Vec<i32>,
}

/// Reserves and moves the vessel (inserted, waiting) to `provisioning`.
/// `Ok(None)`: nothing fits now. Callers hold the queue's line lock
/// (`store::line::lock`), so a unique or check violation here means a bug
/// or a write that bypassed the line, never an ordinary race.
pub async fn reserve(
    conn: &mut PgConnection,
    req: &Request<'_>,
) -> Result<Option<Placement>, sqlx::Error> {
    let row = sqlx::query!(
        r#"
-- Each host's free GPUs, cores and memory are counters on its row (kept by
-- triggers with the claims), so choosing reads one row per host of the
-- queue instead of aggregating the claim tables per call.
WITH chosen_host AS (
    SELECT h.id FROM hosts h
    WHERE h.queue = $2 AND h.state = 'active' AND h.online
      AND ($6::bigint IS NULL OR h.id = $6)
      AND ($7::bigint IS NULL OR h.id <> $7)
      AND h.gpu_count - h.used_gpus >= $3
      AND h.cores - h.used_cores >= $4
      AND h.memory_bytes - h.used_memory >= $5::bigint
    ORDER BY h.gpu_count - h.used_gpus - $3, h.cores - h.used_cores - $4,
             h.memory_bytes - h.used_memory - $5::bigint, h.name
    LIMIT 1
),
free_gpu AS (
    SELECT g.id, g.uuid, g.idx, g.numa_node,
           count(*) OVER (PARTITION BY g.numa_node) AS node_free
    FROM gpus g JOIN chosen_host ch ON g.host_id = ch.id
    WHERE NOT EXISTS (SELECT 1 FROM gpu_claims c WHERE c.gpu_id = g.id)
),
-- A waking vessel gets its old GPUs and cores back where they are free
-- (its container then starts as it was); a new one has none to prefer.
before AS (SELECT gpu_uuids, cores FROM vessels WHERE id = $1),
picked_gpus AS (
    SELECT id, uuid, idx, numa_node FROM free_gpu
    ORDER BY EXISTS (SELECT 1 FROM before b WHERE uuid = ANY(b.gpu_uuids)) DESC,
             (node_free >= $3) DESC, node_free, numa_node, idx
    LIMIT $3
),
picked_cores AS (
    SELECT k.host_id, k.core FROM host_cores k JOIN chosen_host ch ON k.host_id = ch.id
    WHERE NOT EXISTS (SELECT 1 FROM core_claims c WHERE c.host_id = k.host_id AND c.core = k.core)
    ORDER BY EXISTS (SELECT 1 FROM before b WHERE k.core = ANY(b.cores)) DESC,
             (k.numa_node IN (SELECT numa_node FROM picked_gpus)) DESC, k.numa_node, k.core
    LIMIT $4
),
-- Its own held address (a waking vessel's), else the first of the pool that
-- no reservation and no sleeping vessel holds.
picked_address AS (
    (SELECT a.address FROM address_holds a JOIN chosen_host ch ON ch.id = a.host_id
     WHERE a.vessel_id = $1)
    UNION ALL
    (SELECT set_masklen(h.address_pool::inet + n, 32) AS address
     FROM hosts h JOIN chosen_host ch ON h.id = ch.id,
          generate_series(1, CASE WHEN h.address_pool IS NULL THEN 0
                                  ELSE (2 ^ (32 - masklen(h.address_pool)))::bigint - 2 END) AS n
     WHERE set_masklen(h.address_pool::inet + n, 32) IS DISTINCT FROM set_masklen(h.gateway, 32)
       AND NOT EXISTS (SELECT 1 FROM reservations r
                       WHERE r.host_id = h.id AND r.address = set_masklen(h.address_pool::inet + n, 32))
       AND NOT EXISTS (SELECT 1 FROM address_holds a
                       WHERE a.host_id = h.id AND a.address = set_masklen(h.address_pool::inet + n, 32))
     ORDER BY n
     LIMIT 1)
    LIMIT 1
),
reservation AS (
    INSERT INTO reservations (vessel_id, host_id, memory_bytes, address, gpus, cpus)
    SELECT $1, h.id, $5::bigint, (SELECT address FROM picked_address), $3::int, $4::int
    FROM hosts h JOIN chosen_host ch ON h.id = ch.id
    WHERE (SELECT count(*) FROM picked_gpus) = $3
      AND (SELECT count(*) FROM picked_cores) = $4
      AND (h.address_pool IS NULL OR EXISTS (SELECT 1 FROM picked_address))
    RETURNING vessel_id, host_id, address
),
gpu_claim AS (
    INSERT INTO gpu_claims (gpu_id, vessel_id)
    SELECT p.id, r.vessel_id FROM picked_gpus p, reservation r
    RETURNING gpu_id
),
core_claim AS (
    INSERT INTO core_claims (host_id, core, vessel_id)
    SELECT p.host_id, p.core, r.vessel_id FROM picked_cores p, reservation r
    RETURNING core
),
-- The held address is the reservation's now.
moved_hold AS (
    DELETE FROM address_holds a USING reservation r
    WHERE a.vessel_id = r.vessel_id AND a.host_id = r.host_id
)
-- A lifetime counts from placement: the time spent in line is added back,
-- and for a waking vessel the time it slept too (its lifetime is paused).
-- Why it waited is over: the reason goes with the placement.
UPDATE vessels v SET
    state = 'provisioning', host_id = r.host_id, address = r.address, updated_at = now(),
    reason = NULL,
    expires_at = v.expires_at
        + greatest(now() - coalesce(v.hibernated_at, v.queued_at, now()), interval '0'),
    gpu_uuids = ARRAY(SELECT uuid FROM picked_gpus ORDER BY idx),
    cores = ARRAY(SELECT core FROM picked_cores ORDER BY core)
FROM reservation r
WHERE v.id = r.vessel_id
RETURNING (SELECT name FROM hosts WHERE id = r.host_id) AS "host!",
          host(v.address) AS address, v.gpu_uuids, v.cores
"#,
        req.vessel_id,
        req.queue,
        req.gpus as i64,
        req.cpus as i64,
        req.memory_bytes,
        req.on_host,
        req.not_on_host,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Placement {
        host: r.host,
        address: r.address,
        gpu_uuids: r.gpu_uuids,
        cores: r.cores,
    }))
}

/// What is free where, for the message a user gets when nothing fits.
/// Reads through the caller's connection: it runs inside a create that
/// holds the queue's line lock, and a second connection from the pool could
/// wait behind fifty other creates waiting on that lock.
pub async fn explain_no_capacity(
    conn: &mut PgConnection,
    req: &Request<'_>,
) -> Result<String, sqlx::Error> {
    let hosts = sqlx::query!(
        r#"SELECT h.name, h.state, h.online,
             (SELECT count(*) FROM gpus g WHERE g.host_id = h.id
                AND NOT EXISTS (SELECT 1 FROM gpu_claims c WHERE c.gpu_id = g.id)) AS "free_gpus!",
             h.cores - (SELECT count(*) FROM core_claims c WHERE c.host_id = h.id) AS "free_cores!",
             (h.memory_bytes - (SELECT coalesce(sum(r.memory_bytes), 0) FROM reservations r
                                WHERE r.host_id = h.id))::bigint AS "free_memory!"
           FROM hosts h WHERE h.queue = $1
           ORDER BY h.online DESC, h.state, 4 DESC, h.name"#,
        req.queue
    )
    .fetch_all(conn)
    .await?;
    let wanted = format!(
        "{} GPU{}, {} core{} and {} of memory",
        req.gpus,
        if req.gpus == 1 { "" } else { "s" },
        req.cpus,
        if req.cpus == 1 { "" } else { "s" },
        ByteSize(req.memory_bytes.max(0) as u64)
    );
    if hosts.is_empty() {
        return Ok(format!("queue `{}` has no hosts", req.queue));
    }
    let shown: Vec<String> = hosts
        .iter()
        .take(8)
        .map(|h| {
            if !h.online {
                format!("{}: offline", h.name)
            } else if h.state != HostState::Active.as_str() {
                format!("{}: {}", h.name, h.state)
            } else {
                format!(
                    "{}: {} GPU{}, {} core{}, {}",
                    h.name,
                    h.free_gpus,
                    if h.free_gpus == 1 { "" } else { "s" },
                    h.free_cores,
                    if h.free_cores == 1 { "" } else { "s" },
                    ByteSize(h.free_memory.max(0) as u64)
                )
            }
        })
        .collect();
    let more = if hosts.len() > 8 {
        format!(" (and {} more hosts)", hosts.len() - 8)
    } else {
        String::new()
    };
    Ok(format!(
        "no host in queue `{}` has {wanted} free. Free now: {}{more}",
        req.queue,
        shown.join("; ")
    ))
}
