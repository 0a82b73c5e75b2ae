//! The App Home tab: the user's vessels with their buttons, and what of
//! theirs waits in line.

use slack_morphism::prelude::{SlackHomeView, SlackView};
use vessel_api::vessels::VesselView;
use vessel_api::VesselState;

use super::line::CANCEL;
use super::vessel::{EXTEND, KILL};
use super::{Block, Button, Message};

pub fn home(vessels: &[VesselView]) -> SlackView {
    SlackView::Home(SlackHomeView::new(message(vessels).to_blocks()))
}

fn message(vessels: &[VesselView]) -> Message {
    let (waiting, live): (Vec<&VesselView>, Vec<&VesselView>) = vessels
        .iter()
        .partition(|v| v.state == VesselState::Pending);
    let mut m = Message::new("Your vessels").block(Block::Header("Your vessels".into()));
    if live.is_empty() {
        m = m.block(Block::Section(
            "No live vessels. Type `/vessel create` anywhere to start one.".into(),
        ));
    }
    for v in live {
        let name = v.name.as_str();
        let id = v.id.to_string();
        m = m.block(Block::Section(format!(
            "*{name}* — {} on `{}` · {} GPU(s) · {} CPU(s) · {}",
            v.state,
            v.host.as_deref().unwrap_or(""),
            v.gpus,
            v.cpus,
            v.memory
        )));
        if matches!(v.state, VesselState::Running | VesselState::Provisioning) {
            m = m.block(Block::Actions(vec![
                Button::action("Extend 24h", EXTEND, &id),
                Button::action("Kill", KILL, &id).danger().confirm(
                    "Kill this vessel?",
                    &format!("*{name}* will be stopped and removed."),
                    "Kill",
                ),
            ]));
        }
    }
    if !waiting.is_empty() {
        m = m.block(Block::Header("Waiting in line".into()));
    }
    for v in waiting {
        let name = v.name.as_str();
        let place = match &v.line {
            Some(p) => format!(
                "#{} of {} in line for `{}` — {}",
                p.position, p.of, v.queue, p.reason
            ),
            None => format!("in line for `{}`", v.queue),
        };
        m = m
            .block(Block::Section(format!(
                "*{name}* — {place} · {} GPU(s) · {} CPU(s) · {}",
                v.gpus, v.cpus, v.memory
            )))
            .block(Block::Actions(vec![Button::action(
                "Cancel",
                CANCEL,
                &v.id.to_string(),
            )
            .danger()
            .confirm(
                "Leave the line?",
                &format!("*{name}* stops waiting; nothing was started."),
                "Leave the line",
            )]));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_requests_are_listed_apart_with_a_cancel() {
        let vessel = |name: &str, state: &str, line: serde_json::Value| -> VesselView {
            serde_json::from_value(serde_json::json!({
                "id": uuid::Uuid::new_v4(), "name": name, "owner": "alice", "owner_id": "UALICE",
                "queue": "3090", "image": "vessel/base:latest", "gpus": 4, "cpus": 8,
                "memory_bytes": 1u64 << 30, "state": state, "reason": null, "host": null,
                "gpu_uuids": [], "cores": [], "address": null,
                "created_at": "2026-12-01T10:00:00Z", "started_at": null, "ended_at": null,
                "expires_at": "2026-12-02T10:00:00Z", "line": line,
            }))
            .expect("the contract's vessel shape")
        };
        let m = message(&[
            vessel("busy", "running", serde_json::Value::Null),
            vessel(
                "wide",
                "pending",
                serde_json::json!({ "position": 2, "of": 3, "reason": "no host has 4 free GPUs in 3090",
                    "since": "2026-12-01T10:00:00Z", "gives_up_at": "2026-12-02T10:00:00Z" }),
            ),
        ]);
        let text = m.to_text();
        assert!(text.contains("== Waiting in line =="), "{text}");
        assert!(
            text.contains("wide — #2 of 3 in line for 3090 — no host has 4 free GPUs in 3090"),
            "{text}"
        );
        let actions: Vec<&str> = m.buttons().iter().map(|b| b.action_id.as_str()).collect();
        assert_eq!(actions, vec![EXTEND, KILL, CANCEL]);
        // Only waiting: the live part says there is nothing live.
        let only = message(&[vessel("wide", "pending", serde_json::Value::Null)]).to_text();
        assert!(
            only.contains("No live vessels") && only.contains("wide — in line for 3090"),
            "{only}"
        );
    }
}
