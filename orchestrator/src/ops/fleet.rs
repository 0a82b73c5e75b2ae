//! Fleet status: per host (a GPU grid, cores, memory) and per queue. No
//! secrets: anyone with `fleet:read` may see it.

use std::collections::BTreeMap;

use vessel_api::fleet::{DiskEnforcement, FleetStatus, HostState, HostStatus, QueueStatus};
use vessel_api::QueueName;

use super::{Action, Caller, Ctx, OpError};
use crate::store::hosts;

fn host_view(h: hosts::HostStatus) -> Result<HostStatus, OpError> {
    Ok(HostStatus {
        queue: QueueName::parse(&h.queue)
            .map_err(|e| OpError::bug(format!("host {}: {e}", h.name)))?,
        name: h.name,
        state: if h.state == HostState::Draining.as_str() {
            HostState::Draining
        } else {
            HostState::Active
        },
        online: h.online,
        probe_error: h.probe_error,
        cores: h.cores.max(0) as u32,
        cores_used: h.cores_used.max(0) as u32,
        memory_bytes: h.memory_bytes.max(0) as u64,
        memory_used: h.memory_used.max(0) as u64,
        vessels: h.vessels.max(0) as u32,
        gpus: h.gpus.0,
        storage_driver: h.storage_driver,
        disk_limit: DiskEnforcement::of(h.disk_quota),
    })
}

/// Per-queue totals; free capacity counts only where a vessel could be
/// placed now (online and active).
fn queue_totals(
    configured: &[QueueName],
    hosts: &[HostStatus],
) -> BTreeMap<QueueName, QueueStatus> {
    let mut queues: BTreeMap<QueueName, QueueStatus> = configured
        .iter()
        .map(|q| (q.clone(), QueueStatus::default()))
        .collect();
    for h in hosts {
        let q = queues.entry(h.queue.clone()).or_default();
        q.hosts += 1;
        if h.online {
            q.hosts_online += 1;
        }
        q.gpus += h.gpus.len() as u32;
        q.cores += u64::from(h.cores);
        q.memory_bytes += h.memory_bytes;
        if h.online && h.state == HostState::Active {
            q.gpus_free += h.gpus.iter().filter(|g| g.is_free()).count() as u32;
            q.cores_free += u64::from(h.cores.saturating_sub(h.cores_used));
            q.memory_free += h.memory_bytes.saturating_sub(h.memory_used);
        }
    }
    queues
}

fn configured(ctx: &Ctx) -> Vec<QueueName> {
    ctx.config
        .queues
        .keys()
        .filter_map(|q| QueueName::parse(q).ok())
        .collect()
}

/// Each queue's waiting count, from the line.
async fn add_waiting(
    ctx: &Ctx,
    queues: &mut BTreeMap<QueueName, QueueStatus>,
) -> Result<(), OpError> {
    for l in crate::store::line::lines(&ctx.db).await? {
        if let Some(q) = QueueName::parse(&l.queue)
            .ok()
            .and_then(|n| queues.get_mut(&n))
        {
            q.waiting = l.waiting.max(0) as u32;
        }
    }
    Ok(())
}

/// Every host's GPU grid and the queues' totals.
pub async fn status(ctx: &Ctx, caller: &Caller) -> Result<FleetStatus, OpError> {
    let hosts = hosts_page(ctx, caller, None, 0, i64::MAX).await?;
    let mut queues = queue_totals(&configured(ctx), &hosts);
    add_waiting(ctx, &mut queues).await?;
    Ok(FleetStatus { hosts, queues })
}

/// A page of hosts with their GPUs and holders (by queue, then name).
pub async fn hosts_page(
    ctx: &Ctx,
    caller: &Caller,
    queue: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Vec<HostStatus>, OpError> {
    caller.require(Action::ReadFleet)?;
    hosts::status_of(&ctx.db, queue, offset, limit)
        .await?
        .into_iter()
        .map(host_view)
        .collect()
}

/// The per-queue totals of `status` without reading a GPU row: from the
/// counters every host row keeps. What the portal's summaries show at a
/// thousand hosts.
pub async fn totals(
    ctx: &Ctx,
    caller: &Caller,
) -> Result<BTreeMap<QueueName, QueueStatus>, OpError> {
    caller.require(Action::ReadFleet)?;
    let mut queues: BTreeMap<QueueName, QueueStatus> = configured(ctx)
        .into_iter()
        .map(|q| (q, QueueStatus::default()))
        .collect();
    let n = |v: i64| v.max(0) as u64;
    for t in hosts::totals(&ctx.db).await? {
        let Ok(name) = QueueName::parse(&t.queue) else {
            continue;
        };
        queues.insert(
            name,
            QueueStatus {
                hosts: n(t.hosts) as u32,
                hosts_online: n(t.hosts_online) as u32,
                gpus: n(t.gpus) as u32,
                gpus_free: n(t.gpus_free) as u32,
                cores: n(t.cores),
                cores_free: n(t.cores_free),
                memory_bytes: n(t.memory_bytes),
                memory_free: n(t.memory_free),
                waiting: 0,
            },
        );
    }
    add_waiting(ctx, &mut queues).await?;
    Ok(queues)
}

/// `/metrics` in the Prometheus text format.
pub async fn metrics(ctx: &Ctx, caller: &Caller) -> Result<String, OpError> {
    caller.require(Action::ReadMetrics)?;
    Ok(crate::metrics::text(&ctx.db, &ctx.config).await?)
}
