//! Fleet status: per host (a GPU grid, cores, memory) and per queue.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::AppState;
use crate::store::hosts::{self, HostStatus};

#[derive(Debug, Default, Serialize)]
pub struct QueueStatus {
    pub hosts: usize,
    pub hosts_online: usize,
    pub gpus: usize,
    pub gpus_free: usize,
    pub cores: i64,
    pub cores_free: i64,
    pub memory_bytes: i64,
    pub memory_free: i64,
}

#[derive(Debug, Serialize)]
pub struct FleetStatus {
    pub hosts: Vec<HostStatus>,
    pub queues: BTreeMap<String, QueueStatus>,
}

pub async fn status(State(state): State<AppState>) -> Result<Json<FleetStatus>, ApiError> {
    let hosts = hosts::status(&state.db).await?;
    let mut queues: BTreeMap<String, QueueStatus> = state
        .config
        .queues
        .keys()
        .map(|q| (q.clone(), QueueStatus::default()))
        .collect();
    for h in &hosts {
        let q = queues.entry(h.queue.clone()).or_default();
        q.hosts += 1;
        let gpus = h.gpus.as_array().map(Vec::as_slice).unwrap_or_default();
        if h.online {
            q.hosts_online += 1;
        }
        // Capacity counts only where a vessel could be placed now.
        let usable = h.online && h.state == "active";
        q.gpus += gpus.len();
        q.cores += h.cores as i64;
        q.memory_bytes += h.memory_bytes;
        if usable {
            q.gpus_free += gpus.iter().filter(|g| g["vessel"].is_null()).count();
            q.cores_free += h.cores as i64 - h.cores_used;
            q.memory_free += h.memory_bytes - h.memory_used;
        }
    }
    Ok(Json(FleetStatus { hosts, queues }))
}
