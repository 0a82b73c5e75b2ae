//! The waiting line: where a request that does not fit yet stands, the
//! whole line per queue, an admin moving a request to the front, and the
//! per-user limits an admin sets.
//!
//! The order is first come, first served within a queue; a request over
//! its owner's limit waits without blocking those behind it; and a request
//! at the head that has waited the queue's `hold_after` holds a host so
//! smaller requests stop overtaking it (no starvation).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::names::{QueueName, VesselName};
use crate::units::ByteSize;

/// A waiting request's place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinePlace {
    /// 1 is next.
    pub position: u32,
    /// How many wait in this queue, this one included.
    pub of: u32,
    /// Why it waits, in words: "no host has 4 free GPUs in 3090".
    pub reason: String,
    /// When it joined the line.
    pub since: DateTime<Utc>,
    /// When it stops waiting and ends `expired`.
    pub gives_up_at: DateTime<Utc>,
    /// The host held for it (it waited long at the head of the line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<String>,
    /// The earliest time enough frees up by the lifetimes of the vessels
    /// holding it, when there is one; never a guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
}

/// "At the latest by Tue 14:00, when 2 vessels expire on gpu-3."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    pub by: DateTime<Utc>,
    pub host: String,
    /// Vessels whose expiry frees what is needed.
    pub vessels: u32,
}

/// One waiting request in the whole line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineEntry {
    pub id: Uuid,
    pub name: VesselName,
    /// The owner's unix name.
    pub owner: String,
    pub owner_id: String,
    pub gpus: u32,
    pub cpus: u32,
    #[serde(rename = "memory_bytes")]
    pub memory: ByteSize,
    pub place: LinePlace,
}

/// `GET /v1/line`: every queue's line, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub queues: BTreeMap<QueueName, Vec<LineEntry>>,
}

/// `PUT /v1/users/{subject}/limits/{queue}`: an admin's override of the
/// queue's per-user limits for one person. `null` falls back to the queue's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLimits {
    #[serde(default)]
    pub max_gpus: Option<u32>,
    #[serde(default)]
    pub max_vessels: Option<u32>,
}

/// What holds for one person in one queue, after overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub subject: String,
    pub queue: QueueName,
    /// None: no limit.
    pub max_gpus: Option<u32>,
    pub max_vessels: Option<u32>,
    /// Whether an admin's override (rather than the queue's) applies.
    pub overridden: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_round_trips_without_empty_fields() {
        let place = LinePlace {
            position: 3,
            of: 5,
            reason: "no host has 4 free GPUs in 3090".into(),
            since: DateTime::from_timestamp(0, 0).unwrap(),
            gives_up_at: DateTime::from_timestamp(86_400, 0).unwrap(),
            holds: None,
            estimate: None,
        };
        let json = serde_json::to_value(&place).unwrap();
        assert!(json.get("holds").is_none() && json.get("estimate").is_none());
        assert_eq!(serde_json::from_value::<LinePlace>(json).unwrap(), place);
        let bad = serde_json::from_str::<SetLimits>(r#"{"max_gpu":4}"#).unwrap_err();
        assert!(bad.to_string().contains("max_gpu"), "{bad}");
    }
}
