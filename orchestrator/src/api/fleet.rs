//! Fleet status: per host (a GPU grid, cores, memory) and per queue. No
//! secrets: anyone with `fleet:read` may see it.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use vessel_api::fleet::{FleetStatus, HostState, HostStatus, QueueStatus};
use vessel_api::QueueName;

use super::error::ApiError;
use super::AppState;
use crate::store::hosts;

fn host_view(h: hosts::HostStatus) -> Result<HostStatus, ApiError> {
    Ok(HostStatus {
        queue: QueueName::parse(&h.queue)
            .map_err(|e| ApiError::bug(format!("host {}: {e}", h.name)))?,
        name: h.name,
        state: if h.state == "draining" {
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

pub async fn status(State(state): State<AppState>) -> Result<Json<FleetStatus>, ApiError> {
    let hosts = hosts::status(&state.db)
        .await?
        .into_iter()
        .map(host_view)
        .collect::<Result<Vec<_>, _>>()?;
    let configured: Vec<QueueName> = state
        .config
        .queues
        .keys()
        .filter_map(|q| QueueName::parse(q).ok())
        .collect();
    let mut queues = queue_totals(&configured, &hosts);
    for l in crate::store::line::lines(&state.db).await? {
        if let Some(q) = QueueName::parse(&l.queue)
            .ok()
            .and_then(|n| queues.get_mut(&n))
        {
            q.waiting = l.waiting.max(0) as u32;
        }
    }
    Ok(Json(FleetStatus { hosts, queues }))
}
