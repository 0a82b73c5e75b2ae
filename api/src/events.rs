//! The outbox on the wire: each event has a kind and a payload typed by what
//! it is about (a vessel or a host). Clients read it with a cursor
//! (`GET /v1/events?after=ID&wait=SECS`) and drop duplicates by id.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::names::{VesselName, VesselState};

/// What happened. Vessel state changes are `vessel.<state>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The vessel entered this state.
    Vessel(VesselState),
    VesselExtended,
    /// A waiting request's place in line or reason changed.
    VesselQueued,
    /// Idle long enough to be warned; Keep or Kill.
    IdleWarning,
    /// Its lifetime ends soon.
    ExpiryWarning,
    /// It wrote more outside its home than its queue allows: stopped at the
    /// next sweep unless it shrinks.
    DiskWarning,
    /// Idle: it will be hibernated soon; Keep or Hibernate now.
    HibernationWarning,
    /// Asleep long: it will be buried soon; Wake or Kill.
    BurialWarning,
    HostDrain,
    HostUndrain,
    HostUnreachable,
    HostRecovered,
    /// A host's GPU metrics stopped arriving: one message per incident to
    /// each owner of a vessel there (`HostEvent::to`) and to the admins.
    GpuMetricsStale,
    /// A kind this client does not know (a newer orchestrator): skipped.
    Other(String),
}

impl EventKind {
    pub fn parse(s: &str) -> EventKind {
        match s {
            "vessel.extended" => EventKind::VesselExtended,
            "vessel.queued" => EventKind::VesselQueued,
            "vessel.idle_warning" => EventKind::IdleWarning,
            "vessel.expiry_warning" => EventKind::ExpiryWarning,
            "vessel.disk_warning" => EventKind::DiskWarning,
            "vessel.hibernation_warning" => EventKind::HibernationWarning,
            "vessel.burial_warning" => EventKind::BurialWarning,
            "host.drain" => EventKind::HostDrain,
            "host.undrain" => EventKind::HostUndrain,
            "host.unreachable" => EventKind::HostUnreachable,
            "host.recovered" => EventKind::HostRecovered,
            "host.gpu_metrics_stale" => EventKind::GpuMetricsStale,
            other => match other.strip_prefix("vessel.").and_then(VesselState::parse) {
                Some(state) => EventKind::Vessel(state),
                None => EventKind::Other(other.to_string()),
            },
        }
    }

    pub fn is_host(&self) -> bool {
        matches!(
            self,
            EventKind::HostDrain
                | EventKind::HostUndrain
                | EventKind::HostUnreachable
                | EventKind::HostRecovered
                | EventKind::GpuMetricsStale
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Vessel(state) => write!(f, "vessel.{state}"),
            EventKind::VesselExtended => f.write_str("vessel.extended"),
            EventKind::VesselQueued => f.write_str("vessel.queued"),
            EventKind::IdleWarning => f.write_str("vessel.idle_warning"),
            EventKind::ExpiryWarning => f.write_str("vessel.expiry_warning"),
            EventKind::DiskWarning => f.write_str("vessel.disk_warning"),
            EventKind::HibernationWarning => f.write_str("vessel.hibernation_warning"),
            EventKind::BurialWarning => f.write_str("vessel.burial_warning"),
            EventKind::HostDrain => f.write_str("host.drain"),
            EventKind::HostUndrain => f.write_str("host.undrain"),
            EventKind::HostUnreachable => f.write_str("host.unreachable"),
            EventKind::HostRecovered => f.write_str("host.recovered"),
            EventKind::GpuMetricsStale => f.write_str("host.gpu_metrics_stale"),
            EventKind::Other(s) => f.write_str(s),
        }
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(EventKind::parse(&String::deserialize(d)?))
    }
}

/// An event about a vessel: enough to address its owner; clients fetch the
/// vessel itself for everything else (so secrets never sit in the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VesselEvent {
    pub id: Uuid,
    pub name: VesselName,
    /// The owner's subject: whom to tell.
    pub owner_id: String,
    pub state: VesselState,
    #[serde(default)]
    pub reason: Option<String>,
    /// What to tell them, for warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An event about a host: drained, back, gone dark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEvent {
    pub host: String,
    /// Who drained or undrained it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Vessels it affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vessels: Option<u32>,
    /// Whom to tell (a subject) when it is one person's news; the admins
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// What to tell them, written by the orchestrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventPayload {
    Vessel(VesselEvent),
    Host(HostEvent),
    /// A payload this client cannot read (a newer orchestrator).
    Other(serde_json::Value),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub vessel_id: Option<Uuid>,
    pub kind: EventKind,
    pub payload: EventPayload,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/events`: what came after the cursor, and where to continue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    pub events: Vec<Event>,
    pub next: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_survive() {
        for kind in [
            EventKind::Vessel(VesselState::Running),
            EventKind::IdleWarning,
            EventKind::DiskWarning,
            EventKind::HibernationWarning,
            EventKind::BurialWarning,
            EventKind::VesselQueued,
            EventKind::Vessel(VesselState::Expired),
            EventKind::HostUnreachable,
            EventKind::GpuMetricsStale,
            EventKind::Other("vessel.teleported".into()),
        ] {
            assert_eq!(EventKind::parse(&kind.to_string()), kind);
        }
        assert_eq!(
            EventKind::parse("vessel.buried"),
            EventKind::Vessel(VesselState::Buried)
        );
    }

    #[test]
    fn payloads_are_read_by_their_shape() {
        let host: EventPayload =
            serde_json::from_str(r#"{"host":"gpu-1","reason":"ssh timed out","vessels":2}"#)
                .unwrap();
        assert!(matches!(host, EventPayload::Host(h) if h.vessels == Some(2)));
        let vessel: EventPayload = serde_json::from_value(serde_json::json!({
            "id": Uuid::nil(), "name": "train", "owner_id": "U1", "state": "running",
        }))
        .unwrap();
        assert!(matches!(vessel, EventPayload::Vessel(v) if v.owner_id == "U1"));
    }
}
