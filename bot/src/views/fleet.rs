//! `/fleet` views: a compact GPU grid per host, per-queue totals, hosts, and
//! the audit log.

use vessel_api::audit::AuditEntry;
use vessel_api::fleet::{FleetStatus, GpuSlot, HostState};
use vessel_api::ByteSize;

use super::{Block, Message};

/// `■` a GPU in use, `□` a free one.
fn grid(gpus: &[GpuSlot]) -> String {
    if gpus.is_empty() {
        return "—".into();
    }
    gpus.iter()
        .map(|g| if g.is_free() { '□' } else { '■' })
        .collect()
}

fn size(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

pub fn status(fleet: &FleetStatus) -> Message {
    let width = fleet
        .hosts
        .iter()
        .map(|h| h.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let lines: Vec<String> = fleet
        .hosts
        .iter()
        .map(|h| {
            let flag = if !h.online {
                "  OFFLINE"
            } else if h.state == HostState::Draining {
                "  draining"
            } else {
                ""
            };
            format!(
                "{:width$}  {:<8}  {:>8}  cores {:>3}/{:<3}  mem {:>6}/{:<6}{flag}",
                h.name,
                h.queue.as_str(),
                grid(&h.gpus),
                h.cores_used,
                h.cores,
                size(h.memory_used),
                size(h.memory_bytes),
            )
        })
        .collect();
    let queues: Vec<String> = fleet
        .queues
        .iter()
        .map(|(name, s)| {
            format!(
                "`{name}`: {} of {} GPUs free, {} cores free, {} hosts online of {}, {}",
                s.gpus_free,
                s.gpus,
                s.cores_free,
                s.hosts_online,
                s.hosts,
                if s.waiting == 0 {
                    "nobody waiting".to_string()
                } else {
                    format!("*{} waiting* (`/fleet queue`)", s.waiting)
                }
            )
        })
        .collect();
    Message::new(format!("Fleet: {} hosts", fleet.hosts.len()))
        .block(Block::Header("Fleet status".into()))
        .block(Block::Code(if lines.is_empty() {
            "no hosts".into()
        } else {
            lines.join("\n")
        }))
        .block(Block::Section(queues.join("\n")))
        .block(Block::Context("■ in use  □ free".into()))
}

pub fn hosts(fleet: &FleetStatus) -> Message {
    let lines: Vec<String> = fleet
        .hosts
        .iter()
        .map(|h| {
            let model = h
                .gpus
                .first()
                .map(|g| g.model.as_str())
                .unwrap_or("no GPUs");
            let problem = h
                .probe_error
                .as_deref()
                .map(|e| format!(" — :warning: {e}"))
                .unwrap_or_default();
            format!(
                "• *{}* (`{}`, {}): {} × {model}, {} cores, {}, disk {}{problem}",
                h.name,
                h.queue,
                if h.online {
                    h.state.as_str()
                } else {
                    "offline"
                },
                h.gpus.len(),
                h.cores,
                size(h.memory_bytes),
                h.disk_limit.as_str(),
            )
        })
        .collect();
    Message::new(format!("{} hosts", lines.len())).block(Block::Section(if lines.is_empty() {
        "No hosts.".into()
    } else {
        lines.join("\n")
    }))
}

pub fn audit(entries: &[AuditEntry]) -> Message {
    if entries.is_empty() {
        return Message::says("Nothing in the audit log for that.");
    }
    let lines: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{}  {:<10} {:<16} {:<8} {}",
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.action,
                e.outcome,
                e.target.as_deref().unwrap_or("")
            )
        })
        .collect();
    Message::new(format!("{} audit entries", entries.len()))
        .block(Block::Header("Audit log (newest first)".into()))
        .block(Block::Code(lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_who_waits_per_queue() {
        let fleet: FleetStatus =
            serde_json::from_value(serde_json::json!({ "hosts": [], "queues": {
            "3090": { "hosts": 1, "hosts_online": 1, "gpus": 4, "gpus_free": 0, "cores": 8,
                      "cores_free": 2, "memory_bytes": 1, "memory_free": 1, "waiting": 3 },
            "cpu": { "hosts": 1, "hosts_online": 1, "gpus": 0, "gpus_free": 0, "cores": 8,
                     "cores_free": 8, "memory_bytes": 1, "memory_free": 1 } } }))
            .expect("the contract's fleet shape");
        let text = status(&fleet).to_text();
        assert!(
            text.contains("3090: 0 of 4 GPUs free, 2 cores free, 1 hosts online of 1, 3 waiting"),
            "{text}"
        );
        assert!(
            text.contains(
                "cpu: 0 of 0 GPUs free, 8 cores free, 1 hosts online of 1, nobody waiting"
            ),
            "{text}"
        );
    }
}
