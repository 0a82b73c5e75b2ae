//! Hosts as the database knows them: what the last probe found, whether they
//! answer, and how much of them is reserved.

use sqlx::{PgConnection, PgPool};

use crate::config::{HostSpec, NetworkSpec};
use crate::domain::QueueName;
use crate::hosts::probe::Inventory;
use crate::hosts::storage::Storage;

/// Records a successful probe: the host, its cores and its GPUs, in one
/// transaction. Devices that vanished are removed unless a live vessel still
/// holds them (the reconciler deals with those).
pub async fn register(db: &PgPool, spec: &HostSpec, inv: &Inventory) -> Result<i64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let host_id = upsert_host(&mut tx, spec, inv).await?;
    sync_gpus(&mut tx, host_id, inv).await?;
    sync_cores(&mut tx, host_id, inv).await?;
    tx.commit().await?;
    Ok(host_id)
}

async fn upsert_host(
    conn: &mut PgConnection,
    spec: &HostSpec,
    inv: &Inventory,
) -> Result<i64, sqlx::Error> {
    let (pool, gateway) = match &spec.network {
        NetworkSpec::Direct {
            subnet,
            gateway,
            pool,
            ..
        } => {
            let gateway = gateway.unwrap_or_else(|| first_host(subnet));
            (
                Some(pool.unwrap_or(*subnet).to_string()),
                Some(gateway.to_string()),
            )
        }
        // Addresses come from the tailnet, not from a pool of ours.
        NetworkSpec::Tailscale { .. } => (None, None),
    };
    let memory = (inv.memory_bytes - spec.reserved_memory.bytes() as i64).max(0);
    sqlx::query_scalar!(
        r#"INSERT INTO hosts (name, queue, cores, memory_bytes, address_pool, gateway,
                              online, probed_at, probe_error)
           VALUES ($1, $2, $3, $4, $5::text::cidr, $6::text::inet, true, now(), NULL)
           ON CONFLICT (name) DO UPDATE SET
             queue = excluded.queue, cores = excluded.cores,
             memory_bytes = excluded.memory_bytes, address_pool = excluded.address_pool,
             gateway = excluded.gateway, online = true, probed_at = now(),
             probe_error = NULL, updated_at = now()
           RETURNING id"#,
        spec.name,
        spec.queue.as_str(),
        inv.cores.len() as i32,
        memory,
        pool,
        gateway,
    )
    .fetch_one(conn)
    .await
}

async fn sync_gpus(
    conn: &mut PgConnection,
    host_id: i64,
    inv: &Inventory,
) -> Result<(), sqlx::Error> {
    let uuids: Vec<String> = inv.gpus.iter().map(|g| g.uuid.clone()).collect();
    sqlx::query!(
        "DELETE FROM gpus WHERE host_id = $1 AND uuid <> ALL($2)
           AND NOT EXISTS (SELECT 1 FROM gpu_claims c WHERE c.gpu_id = gpus.id)",
        host_id,
        &uuids
    )
    .execute(&mut *conn)
    .await?;
    for gpu in &inv.gpus {
        sqlx::query!(
            "INSERT INTO gpus (host_id, idx, uuid, model, memory_mib, pci_bus_id, numa_node)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (uuid) DO UPDATE SET host_id = excluded.host_id, idx = excluded.idx,
               model = excluded.model, memory_mib = excluded.memory_mib,
               pci_bus_id = excluded.pci_bus_id, numa_node = excluded.numa_node",
            host_id,
            gpu.index,
            gpu.uuid,
            gpu.model,
            gpu.memory_mib,
            gpu.pci_bus_id,
            gpu.numa_node
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn sync_cores(
    conn: &mut PgConnection,
    host_id: i64,
    inv: &Inventory,
) -> Result<(), sqlx::Error> {
    let cores: Vec<i32> = inv.cores.iter().map(|c| c.0).collect();
    let nodes: Vec<i32> = inv.cores.iter().map(|c| c.1).collect();
    sqlx::query!(
        "DELETE FROM host_cores WHERE host_id = $1 AND core <> ALL($2)
           AND NOT EXISTS (SELECT 1 FROM core_claims c
                           WHERE c.host_id = host_cores.host_id AND c.core = host_cores.core)",
        host_id,
        &cores
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO host_cores (host_id, core, numa_node)
         SELECT $1, core, node FROM unnest($2::int[], $3::int[]) AS t(core, node)
         ON CONFLICT (host_id, core) DO UPDATE SET numa_node = excluded.numa_node",
        host_id,
        &cores,
        &nodes
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn first_host(subnet: &ipnet::Ipv4Net) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// A probe failed: the host takes no new vessels until one succeeds. The row
/// is created if this is the host's first probe, so `/fleet` shows it.
pub async fn mark_offline(
    db: &PgPool,
    name: &str,
    queue: &QueueName,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO hosts (name, queue, online, probed_at, probe_error)
         VALUES ($1, $2, false, now(), $3)
         ON CONFLICT (name) DO UPDATE SET online = false, probed_at = now(),
           probe_error = excluded.probe_error, updated_at = now()",
        name,
        queue.as_str(),
        error
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records what the host's storage driver can limit.
pub async fn record_storage(db: &PgPool, name: &str, storage: &Storage) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE hosts SET storage_driver = $2, disk_quota = $3 WHERE name = $1",
        name,
        storage.driver,
        storage.limits_size
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the host's storage driver gives containers a size, as the last
/// survey found (false for a host never surveyed).
pub async fn disk_quota(db: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!("SELECT disk_quota FROM hosts WHERE name = $1", name)
        .fetch_optional(db)
        .await?;
    Ok(found.unwrap_or(false))
}

/// The engine refused a size it was thought to honour: vessels there are
/// measured instead, until the next survey says otherwise.
pub async fn distrust_disk_quota(db: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE hosts SET disk_quota = false WHERE name = $1", name)
        .execute(db)
        .await?;
    Ok(())
}

/// Hosts that left the inventory take no new vessels.
pub async fn retire_missing(db: &PgPool, names: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE hosts SET online = false, probe_error = 'not in the inventory', updated_at = now()
         WHERE name <> ALL($1) AND online",
        names
    )
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug)]
pub struct HostStatus {
    pub name: String,
    pub queue: String,
    pub state: String,
    pub online: bool,
    pub probe_error: Option<String>,
    pub cores: i32,
    pub cores_used: i64,
    pub memory_bytes: i64,
    pub memory_used: i64,
    pub vessels: i64,
    /// One entry per GPU, in index order, with the vessel holding it.
    pub gpus: sqlx::types::Json<Vec<vessel_api::fleet::GpuSlot>>,
    pub storage_driver: Option<String>,
    pub disk_quota: bool,
}

pub async fn status(db: &PgPool) -> Result<Vec<HostStatus>, sqlx::Error> {
    status_of(db, None, 0, i64::MAX).await
}

/// A page of hosts (by queue, then name), in one queue or all. The page is
/// chosen first: the GPU and claim subqueries run for its rows only, not
/// for every row `OFFSET` skips.
pub async fn status_of(
    db: &PgPool,
    queue: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Vec<HostStatus>, sqlx::Error> {
    sqlx::query_as!(
        HostStatus,
        r#"SELECT h.name, h.queue, h.state, h.online, h.probe_error, h.cores, h.memory_bytes,
             (SELECT count(*) FROM core_claims c WHERE c.host_id = h.id) AS "cores_used!",
             (SELECT coalesce(sum(r.memory_bytes), 0) FROM reservations r
               WHERE r.host_id = h.id)::bigint AS "memory_used!",
             (SELECT count(*) FROM reservations r WHERE r.host_id = h.id) AS "vessels!",
             coalesce((SELECT json_agg(json_build_object(
                          'index', g.idx, 'uuid', g.uuid, 'model', g.model,
                          'vessel', v.name, 'owner', u.unix_name) ORDER BY g.idx)
                       FROM gpus g
                       LEFT JOIN gpu_claims gc ON gc.gpu_id = g.id
                       LEFT JOIN vessels v ON v.id = gc.vessel_id
                       LEFT JOIN users u ON u.id = v.owner_id
                       WHERE g.host_id = h.id), '[]'::json)::jsonb AS "gpus!: sqlx::types::Json<Vec<vessel_api::fleet::GpuSlot>>",
             h.storage_driver, h.disk_quota
           FROM (SELECT * FROM hosts WHERE ($1::text IS NULL OR queue = $1)
                 ORDER BY queue, name OFFSET $2 LIMIT $3) h
           ORDER BY h.queue, h.name"#,
        queue,
        offset,
        limit
    )
    .fetch_all(db)
    .await
}

/// One queue's totals, from the counters each host row keeps (placing reads
/// the same ones): no GPU or claim rows are read.
#[derive(Debug)]
pub struct QueueTotals {
    pub queue: String,
    pub hosts: i64,
    pub hosts_online: i64,
    pub gpus: i64,
    pub gpus_free: i64,
    pub cores: i64,
    pub cores_free: i64,
    pub memory_bytes: i64,
    pub memory_free: i64,
}

/// Free counts only where a vessel could be placed now (online, active).
pub async fn totals(db: &PgPool) -> Result<Vec<QueueTotals>, sqlx::Error> {
    sqlx::query_as!(
        QueueTotals,
        r#"SELECT queue, count(*) AS "hosts!", count(*) FILTER (WHERE online) AS "hosts_online!",
             coalesce(sum(gpu_count), 0)::bigint AS "gpus!",
             coalesce(sum(gpu_count - used_gpus) FILTER (WHERE online AND state = 'active'), 0)::bigint AS "gpus_free!",
             coalesce(sum(cores), 0)::bigint AS "cores!",
             coalesce(sum(cores - used_cores) FILTER (WHERE online AND state = 'active'), 0)::bigint AS "cores_free!",
             coalesce(sum(memory_bytes), 0)::bigint AS "memory_bytes!",
             coalesce(sum(memory_bytes - used_memory) FILTER (WHERE online AND state = 'active'), 0)::bigint AS "memory_free!"
           FROM hosts GROUP BY queue"#
    )
    .fetch_all(db)
    .await
}

/// Sets a host's placement state (`active` or `draining`) under a row lock;
/// returns what it was, or None when there is no such host.
pub async fn set_state(
    conn: &mut sqlx::PgConnection,
    name: &str,
    to: &str,
) -> Result<Option<String>, sqlx::Error> {
    let previous = sqlx::query_scalar!("SELECT state FROM hosts WHERE name = $1 FOR UPDATE", name)
        .fetch_optional(&mut *conn)
        .await?;
    if previous.is_some() {
        sqlx::query!(
            "UPDATE hosts SET state = $2, updated_at = now() WHERE name = $1",
            name,
            to
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(previous)
}

/// Hosts that answered their last probe.
pub async fn online_names(db: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT name FROM hosts WHERE online ORDER BY name")
        .fetch_all(db)
        .await
}

/// A host whose incident has just opened, and why.
#[derive(Debug, Clone)]
pub struct Unreachable {
    pub name: String,
    pub probe_error: Option<String>,
}

/// Opens an incident on every probed host that stopped answering and has
/// none open; returns those hosts, each once per incident.
pub async fn open_incidents(db: &PgPool) -> Result<Vec<Unreachable>, sqlx::Error> {
    sqlx::query_as!(
        Unreachable,
        "UPDATE hosts SET incident_since = now() WHERE NOT online AND incident_since IS NULL
           AND probed_at IS NOT NULL
         RETURNING name, probe_error"
    )
    .fetch_all(db)
    .await
}

/// Closes the incident of every host that answers again; returns them.
pub async fn close_incidents(db: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE hosts SET incident_since = NULL WHERE online AND incident_since IS NOT NULL
         RETURNING name"
    )
    .fetch_all(db)
    .await
}
