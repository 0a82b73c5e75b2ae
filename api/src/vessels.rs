//! Vessels on the wire: the create request, the view of a vessel (with its
//! SSH access once running), lists, extend and keep.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::names::{ImageRef, QueueName, VesselName, VesselState};
use crate::units::{ByteSize, Span};

/// `POST /v1/vessels`. Anything left out comes from the queue's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVessel {
    /// None only before the client applied its default queue; the
    /// orchestrator refuses a request without one.
    pub queue: Option<QueueName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `64G`, `512M`, or a number of bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<VesselName>,
    /// `2d`, `24h`, `90m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Span>,
    /// Wait in line when nothing fits now (the default); `false` answers
    /// 409 `no_capacity` at once instead, for scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

/// A vessel as the API shows it; `ssh` appears once it is running, and only
/// to its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VesselView {
    pub id: Uuid,
    pub name: VesselName,
    /// The owner's unix name.
    pub owner: String,
    /// The owner's subject (Slack user id, OIDC `sub`).
    pub owner_id: String,
    pub queue: QueueName,
    pub image: String,
    pub gpus: u32,
    pub cpus: u32,
    #[serde(rename = "memory_bytes")]
    pub memory: ByteSize,
    pub state: VesselState,
    pub reason: Option<String>,
    pub host: Option<String>,
    pub gpu_uuids: Vec<String>,
    pub cores: Vec<u32>,
    pub address: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshAccess>,
    /// Where it stands in line, while it is `pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<crate::line::LinePlace>,
    /// What the undertaker counts, while it runs and has been swept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleView>,
    /// Its queue's limit on what it writes outside its home, and what was
    /// measured, while it runs in a queue with a `disk` limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskView>,
    /// When it went to sleep, while it is hibernated (or waking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hibernated_at: Option<DateTime<Utc>>,
}

/// `POST /v1/vessels/{vessel}/wake`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakeVessel {
    /// Its own host first; when that is full, any host of its queue with
    /// room: its disk is committed, streamed there and started, and the old
    /// container goes once the new one is ready. Its address changes (its
    /// host key does not): `vessel config-ssh` again.
    #[serde(default)]
    pub anywhere: bool,
}

/// A running vessel's writable layer (packages, `/tmp`, `/opt`: everything
/// outside its home) against its queue's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskView {
    pub limit: ByteSize,
    pub enforced: crate::fleet::DiskEnforcement,
    /// The undertaker's last measurement, where it measures.
    pub used: Option<ByteSize>,
    pub measured_at: Option<DateTime<Utc>>,
    /// Found over the limit at this sweep: stopped if still over at the next.
    pub warned_at: Option<DateTime<Utc>>,
}

impl DiskView {
    /// In words, the same at every front door: what it wrote, the limit,
    /// how the limit holds, and what follows a warning.
    pub fn summary(&self) -> String {
        use crate::fleet::DiskEnforcement::{Measured, Sized};
        match (self.enforced, self.used) {
            (Sized, _) => format!(
                "at most {} outside the home (the host's storage sizes the vessel)",
                self.limit
            ),
            (Measured, None) => format!(
                "at most {} outside the home (measured at each idle check; not yet)",
                self.limit
            ),
            (Measured, Some(used)) => {
                let warned = match self.warned_at {
                    Some(_) => " — OVER: stopped at the next check unless it shrinks",
                    None => "",
                };
                format!(
                    "{used} of {} outside the home (measured at each idle check){warned}",
                    self.limit
                )
            }
        }
    }
}

/// The undertaker's ledger of a running vessel: idle work-time so far, and
/// whether a warning went out or a Keep holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleView {
    /// Idle work-seconds counted since it was last busy.
    pub idle_secs: u64,
    pub warned_at: Option<DateTime<Utc>>,
    pub kept_until: Option<DateTime<Utc>>,
}

/// How to reach a running vessel, ready to paste.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshAccess {
    pub host_alias: String,
    pub address: String,
    pub user: String,
    /// Ready to paste into `~/.ssh/config`.
    pub config: String,
    /// Ready to append to `~/.ssh/known_hosts`: no trust on first use.
    pub known_hosts: String,
    pub vscode_url: String,
    /// `http://127.0.0.1:PORT/lab?token=…`, when the image has Jupyter: the
    /// URL as seen after a forward. Jupyter listens on the vessel's loopback
    /// only, so it is reached through SSH: `vessel jupyter NAME`, or
    /// `ssh -L PORT:127.0.0.1:PORT NAME`, on the same port locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jupyter_url: Option<String>,
}

/// `GET /v1/vessels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VesselList {
    pub vessels: Vec<VesselView>,
}

/// The query of `GET /v1/vessels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Everyone's vessels (admins).
    #[serde(default)]
    pub all: bool,
    /// Include buried and failed ones.
    #[serde(default)]
    pub ended: bool,
    /// With `all`: only this owner's (a token subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `POST /v1/vessels/{v}/extend`: live `by` longer, from the later of now
/// and the current expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    pub by: Span,
}

/// `POST /v1/vessels/{v}/keep`: exempt from idle reclaim for `for` (default:
/// the undertaker's `keep_for`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<Span>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_summary_says_what_was_written_and_what_follows() {
        use crate::fleet::DiskEnforcement::{Measured, Sized};
        let at: DateTime<Utc> = "2026-12-05T10:00:00Z".parse().unwrap();
        let disk = |enforced, used: Option<u64>, warned: bool| DiskView {
            limit: ByteSize(24 << 20),
            enforced,
            used: used.map(ByteSize),
            measured_at: used.map(|_| at),
            warned_at: warned.then_some(at),
        };
        let cases = [
            (disk(Sized, None, false), "at most 24M outside the home (the host's storage sizes the vessel)"),
            (disk(Measured, None, false), "at most 24M outside the home (measured at each idle check; not yet)"),
            (disk(Measured, Some(3 << 20), false), "3M of 24M outside the home (measured at each idle check)"),
            (
                disk(Measured, Some(40 << 20), true),
                "40M of 24M outside the home (measured at each idle check) — OVER: stopped at the next check unless it shrinks",
            ),
        ];
        for (d, words) in cases {
            assert_eq!(d.summary(), words);
        }
    }

    #[test]
    fn a_create_request_names_the_bad_field() {
        let ok: CreateVessel =
            serde_json::from_str(r#"{"queue":"3090","gpus":2,"memory":"64G","lifetime":"2d"}"#)
                .unwrap();
        assert_eq!(ok.memory, Some(ByteSize(64 << 30)));
        assert_eq!(ok.lifetime.unwrap().to_string(), "2d");
        let back: CreateVessel =
            serde_json::from_value(serde_json::to_value(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
        for (body, field) in [
            (r#"{"queue":"3090","name":"Bad Name"}"#, "name"),
            (r#"{"queue":"3090","gpuz":1}"#, "gpuz"),
            (r#"{"queue":"no way"}"#, "queue"),
        ] {
            let e = serde_json::from_str::<CreateVessel>(body).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains(field) || text.contains("not a"),
                "{body}: {text}"
            );
        }
    }
}
