//! The App Home tab: the user's vessels with their buttons.

// Not a Slack payload: the orchestrator's JSON, as its client returns it
// today; it becomes the typed API views when that client lands (issue 9).
use serde_json::Value;
use slack_morphism::prelude::{SlackHomeView, SlackView};

use super::vessel::{EXTEND, KILL};
use super::{Block, Button, Message};

/// `vessels` are the orchestrator's vessel views (the API client's JSON).
pub fn home(vessels: &[Value]) -> SlackView {
    let mut m = Message::new("Your vessels").block(Block::Header("Your vessels".into()));
    if vessels.is_empty() {
        m = m.block(Block::Section(
            "No live vessels. Type `/vessel create` anywhere to start one.".into(),
        ));
    }
    for v in vessels {
        let name = v["name"].as_str().unwrap_or("");
        let id = v["id"].as_str().unwrap_or("");
        m = m.block(Block::Section(format!(
            "*{name}* — {} on `{}` · {} GPU(s) · {} CPU(s) · {}",
            v["state"].as_str().unwrap_or(""),
            v["host"].as_str().unwrap_or(""),
            v["gpus"],
            v["cpus"],
            v["memory"].as_str().unwrap_or("")
        )));
        if matches!(v["state"].as_str(), Some("running" | "provisioning")) {
            m = m.block(Block::Actions(vec![
                Button::action("Extend 24h", EXTEND, id),
                Button::action("Kill", KILL, id).danger().confirm(
                    "Kill this vessel?",
                    &format!("*{name}* will be stopped and removed."),
                    "Kill",
                ),
            ]));
        }
    }
    SlackView::Home(SlackHomeView::new(m.to_blocks()))
}
