//! The waiting line's values: a queue's hosts with what is free on each,
//! what a request asks for, a waiting request, an owner's use and limits,
//! and what a placed vessel will release. The store reads rows into them
//! and the line's policy decides over them; a leaf, so neither depends on
//! the other's module for its types.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::units::ByteSize;

/// A host of the queue, with its totals and what is free now.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCap {
    pub id: i64,
    pub name: String,
    /// Not drained.
    pub active: bool,
    pub online: bool,
    pub gpus: i64,
    pub cores: i64,
    pub memory: i64,
    pub free_gpus: i64,
    pub free_cores: i64,
    pub free_memory: i64,
}

impl HostCap {
    /// Online and not drained: takes new vessels.
    pub fn usable(&self) -> bool {
        self.active && self.online
    }

    /// Has what the request asks for free now.
    pub fn fits_now(&self, w: &Ask) -> bool {
        self.free_gpus >= w.gpus && self.free_cores >= w.cpus && self.free_memory >= w.memory
    }

    /// Could hold the request if it were empty.
    pub fn could_ever_fit(&self, w: &Ask) -> bool {
        self.gpus >= w.gpus && self.cores >= w.cpus && self.memory >= w.memory
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ask {
    pub gpus: i64,
    pub cpus: i64,
    pub memory: i64,
}

impl Ask {
    /// "4 GPUs, 16 cores and 64G".
    pub fn describe(&self) -> String {
        let cores = format!(
            "{} core{}",
            self.cpus,
            if self.cpus == 1 { "" } else { "s" }
        );
        let memory = ByteSize(self.memory.max(0) as u64);
        if self.gpus == 0 {
            format!("{cores} and {memory}")
        } else {
            format!("{}, {cores} and {memory}", gpus(self.gpus))
        }
    }
}

/// "1 GPU", "4 GPUs".
pub fn gpus(n: i64) -> String {
    format!("{n} GPU{}", if n == 1 { "" } else { "s" })
}

/// A waiting request, in line order.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiter {
    pub id: Uuid,
    pub owner_id: String,
    pub ask: Ask,
    pub queued_at: DateTime<Utc>,
    /// The host held for it, from an earlier pass.
    pub held_host: Option<i64>,
    /// The only host it may be placed on: a hibernated vessel's wake goes
    /// where its disk is.
    pub pin: Option<i64>,
    /// The host it goes to first if it fits there (a wake that may move:
    /// its disk is there), else anywhere.
    pub home: Option<i64>,
}

/// What an owner holds in the queue now (placed vessels only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub gpus: i64,
    pub vessels: i64,
}

/// An owner's limits in the queue, after an admin's overrides; None: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub max_gpus: Option<i64>,
    pub max_vessels: Option<i64>,
}

/// A placed vessel's share of a host and when its lifetime ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub expires_at: DateTime<Utc>,
    pub gpus: i64,
    pub cpus: i64,
    pub memory: i64,
}
