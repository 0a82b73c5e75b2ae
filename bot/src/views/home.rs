//! The App Home tab: the user's vessels with their buttons.

use slack_morphism::prelude::{SlackHomeView, SlackView};
use vessel_api::vessels::VesselView;
use vessel_api::VesselState;

use super::vessel::{EXTEND, KILL};
use super::{Block, Button, Message};

pub fn home(vessels: &[VesselView]) -> SlackView {
    let mut m = Message::new("Your vessels").block(Block::Header("Your vessels".into()));
    if vessels.is_empty() {
        m = m.block(Block::Section(
            "No live vessels. Type `/vessel create` anywhere to start one.".into(),
        ));
    }
    for v in vessels {
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
    SlackView::Home(SlackHomeView::new(m.to_blocks()))
}
