//! The fleet at a glance: each host with its GPU grid, cores and memory,
//! and per-queue totals. Carries no secrets: anyone with `fleet:read` sees it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::QueueName;

/// `GET /v1/fleet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub hosts: Vec<HostStatus>,
    pub queues: BTreeMap<QueueName, QueueStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Takes new vessels.
    Active,
    /// Keeps what runs, takes nothing new.
    Draining,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Active => "active",
            HostState::Draining => "draining",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    pub name: String,
    pub queue: QueueName,
    pub state: HostState,
    pub online: bool,
    pub probe_error: Option<String>,
    pub cores: u32,
    pub cores_used: u32,
    pub memory_bytes: u64,
    pub memory_used: u64,
    pub vessels: u32,
    /// One entry per GPU, in index order.
    pub gpus: Vec<GpuSlot>,
    /// The engine's storage driver, as the last survey found it.
    #[serde(default)]
    pub storage_driver: Option<String>,
    /// How a queue's `disk` limit holds here: the engine sizes each
    /// container, or the undertaker measures each sweep.
    #[serde(default)]
    pub disk_limit: DiskEnforcement,
}

/// How a vessel is held to its queue's `disk` limit on its host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskEnforcement {
    /// The host's storage driver gives each container a size: a write past
    /// it fails with "no space left on device".
    Sized,
    /// The undertaker measures each vessel's writable layer every sweep,
    /// warns when it is over, and stops it if still over at the next.
    #[default]
    Measured,
}

impl DiskEnforcement {
    pub fn of(sized: bool) -> DiskEnforcement {
        if sized {
            DiskEnforcement::Sized
        } else {
            DiskEnforcement::Measured
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiskEnforcement::Sized => "sized",
            DiskEnforcement::Measured => "measured",
        }
    }
}

/// A GPU and the vessel holding it, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuSlot {
    pub index: i32,
    pub uuid: String,
    pub model: String,
    pub vessel: Option<String>,
    /// The holder's unix name.
    pub owner: Option<String>,
}

impl GpuSlot {
    pub fn is_free(&self) -> bool {
        self.vessel.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatus {
    pub hosts: u32,
    pub hosts_online: u32,
    pub gpus: u32,
    pub gpus_free: u32,
    pub cores: u64,
    pub cores_free: u64,
    pub memory_bytes: u64,
    pub memory_free: u64,
    /// Requests waiting in this queue's line.
    #[serde(default)]
    pub waiting: u32,
}

/// `POST /v1/hosts/{name}/drain` and `/undrain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChange {
    pub host: String,
    pub state: HostState,
    pub was: HostState,
}
