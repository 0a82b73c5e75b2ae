//! `/fleet` views: a compact GPU grid per host, and per-queue totals.

use serde_json::Value;

use super::{size, Block, Message};

/// `■` a GPU in use, `□` a free one.
fn grid(gpus: &[Value]) -> String {
    if gpus.is_empty() {
        return "—".into();
    }
    gpus.iter()
        .map(|g| if g["vessel"].is_null() { '□' } else { '■' })
        .collect()
}

pub fn status(fleet: &Value) -> Message {
    let hosts = fleet["hosts"].as_array().cloned().unwrap_or_default();
    let width = hosts
        .iter()
        .map(|h| h["name"].as_str().unwrap_or("").len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut lines = Vec::new();
    for h in &hosts {
        let gpus = h["gpus"].as_array().cloned().unwrap_or_default();
        let flag = if h["online"] != true {
            "  OFFLINE"
        } else if h["state"] == "draining" {
            "  draining"
        } else {
            ""
        };
        lines.push(format!(
            "{:width$}  {:<8}  {:>8}  cores {:>3}/{:<3}  mem {:>6}/{:<6}{flag}",
            h["name"].as_str().unwrap_or(""),
            h["queue"].as_str().unwrap_or(""),
            grid(&gpus),
            h["cores_used"].as_i64().unwrap_or(0),
            h["cores"].as_i64().unwrap_or(0),
            size(h["memory_used"].as_i64().unwrap_or(0)),
            size(h["memory_bytes"].as_i64().unwrap_or(0)),
        ));
    }
    let queues: Vec<String> = fleet["queues"]
        .as_object()
        .map(|q| {
            q.iter()
                .map(|(name, s)| {
                    let total = s["gpus"].as_i64().unwrap_or(0);
                    let free = s["gpus_free"].as_i64().unwrap_or(0);
                    format!(
                        "`{name}`: {free} of {total} GPUs free, {} cores free, {} hosts online of {}",
                        s["cores_free"].as_i64().unwrap_or(0),
                        s["hosts_online"].as_i64().unwrap_or(0),
                        s["hosts"].as_i64().unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Message::new(format!("Fleet: {} hosts", hosts.len()))
        .block(Block::Header("Fleet status".into()))
        .block(Block::Code(if lines.is_empty() {
            "no hosts".into()
        } else {
            lines.join("\n")
        }))
        .block(Block::Section(queues.join("\n")))
        .block(Block::Context("■ in use  □ free".into()))
}

pub fn hosts(fleet: &Value) -> Message {
    let lines: Vec<String> = fleet["hosts"]
        .as_array()
        .map(|hosts| {
            hosts
                .iter()
                .map(|h| {
                    let model = h["gpus"][0]["model"].as_str().unwrap_or("no GPUs");
                    let problem = h["probe_error"]
                        .as_str()
                        .map(|e| format!(" — :warning: {e}"))
                        .unwrap_or_default();
                    format!(
                        "• *{}* (`{}`, {}): {} × {model}, {} cores, {}{problem}",
                        h["name"].as_str().unwrap_or(""),
                        h["queue"].as_str().unwrap_or(""),
                        if h["online"] == true {
                            h["state"].as_str().unwrap_or("")
                        } else {
                            "offline"
                        },
                        h["gpus"].as_array().map(Vec::len).unwrap_or(0),
                        h["cores"].as_i64().unwrap_or(0),
                        size(h["memory_bytes"].as_i64().unwrap_or(0)),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Message::new(format!("{} hosts", lines.len())).block(Block::Section(if lines.is_empty() {
        "No hosts.".into()
    } else {
        lines.join("\n")
    }))
}

pub fn audit(entries: &[Value]) -> Message {
    if entries.is_empty() {
        return Message::says("Nothing in the audit log for that.");
    }
    let lines: Vec<String> = entries
        .iter()
        .map(|e| {
            let at = e["at"].as_str().unwrap_or("");
            format!(
                "{}  {:<10} {:<16} {:<8} {}",
                at.get(..19).unwrap_or(at).replace('T', " "),
                e["actor"].as_str().unwrap_or(""),
                e["action"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or("")
            )
        })
        .collect();
    Message::new(format!("{} audit entries", entries.len()))
        .block(Block::Header("Audit log (newest first)".into()))
        .block(Block::Code(lines.join("\n")))
}
