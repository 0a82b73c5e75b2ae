//! The create modal (`/vessel create` with no options): a queue select that
//! shows free GPUs per queue, and the other options as optional fields. A
//! submission is checked with the same parser as the command, field by
//! field, so errors appear next to the field.

use std::collections::BTreeMap;

use slack_morphism::prelude::{
    SlackActionId, SlackBlock, SlackBlockChoiceItem, SlackBlockId, SlackBlockPlainText,
    SlackBlockPlainTextInputElement, SlackBlockPlainTextOnly, SlackBlockStaticSelectElement,
    SlackInputBlock, SlackModalView, SlackView, SlackViewState,
};

use vessel_api::fleet::{FleetStatus, QueueStatus};
use vessel_api::grammar;
use vessel_api::vessels::CreateVessel;

pub const CALLBACK_ID: &str = "vessel.create";

/// Every input's element answers under this action id, so a field's value
/// is found by its block id alone.
const VALUE: &str = "value";

/// (block id, label, hint)
const FIELDS: &[(&str, &str, &str)] = &[
    ("gpu", "GPUs", "queue default"),
    ("cpu", "CPUs", "queue default"),
    ("mem", "Memory", "e.g. 64G"),
    ("image", "Image", "queue default, e.g. vessel/cuda12:latest"),
    ("name", "Name", "e.g. train (lowercase, digits, -)"),
    ("for", "Lifetime", "e.g. 2d, 24h"),
];

fn plain(text: &str) -> SlackBlockPlainTextOnly {
    SlackBlockPlainText::new(text.into()).into()
}

/// A queue as the form offers it: free GPUs, and who waits.
fn queue_choice(name: &str, q: &QueueStatus) -> String {
    let free = format!("{name} — {} of {} GPUs free", q.gpus_free, q.gpus);
    match q.waiting {
        0 => free,
        n => format!("{free}, {n} waiting"),
    }
}

/// The form: the queues with their free GPUs and lines, then the other options.
pub fn create(fleet: &FleetStatus, default_queue: Option<&str>) -> SlackView {
    let options: Vec<SlackBlockChoiceItem<SlackBlockPlainTextOnly>> = fleet
        .queues
        .iter()
        .map(|(name, q)| {
            SlackBlockChoiceItem::new(plain(&queue_choice(name.as_str(), q)), name.to_string())
        })
        .collect();
    let initial = default_queue.and_then(|q| options.iter().find(|o| o.value == q).cloned());
    let select = SlackBlockStaticSelectElement::new()
        .with_action_id(VALUE.into())
        .with_placeholder(plain("Pick a queue"))
        .with_options(options)
        .opt_initial_option(initial);
    let mut blocks: Vec<SlackBlock> = vec![SlackInputBlock::new(plain("Queue"), select.into())
        .with_block_id("queue".into())
        .into()];
    for (id, label, hint) in FIELDS {
        let input = SlackBlockPlainTextInputElement::new()
            .with_action_id(VALUE.into())
            .with_placeholder(plain(hint));
        blocks.push(
            SlackInputBlock::new(plain(label), input.into())
                .with_block_id((*id).into())
                .with_optional(true)
                .into(),
        );
    }
    SlackView::Modal(
        SlackModalView::new(plain("New vessel"), blocks)
            .with_callback_id(CALLBACK_ID.into())
            .with_submit(plain("Create"))
            .with_close(plain("Cancel")),
    )
}

/// Reads a submission's `view.state` into a create request, or the errors
/// to show, keyed by block id. Each field goes through the shared grammar
/// alone, so every error lands next to its own field.
pub fn read_submission(state: &SlackViewState) -> Result<CreateVessel, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let value_id = SlackActionId::from(VALUE);
    let field = |block: &str| -> Option<String> {
        let v = state
            .values
            .get(&SlackBlockId::from(block))?
            .get(&value_id)?;
        v.value
            .as_deref()
            .or_else(|| v.selected_option.as_ref().map(|o| o.value.as_str()))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut request = CreateVessel::default();
    match field("queue") {
        Some(q) => {
            if let Err(e) = grammar::set_option(&mut request, "queue", &q) {
                errors.insert("queue".into(), e.0);
            }
        }
        None => {
            errors.insert("queue".into(), "Pick a queue".into());
        }
    }
    for (id, _, _) in FIELDS {
        let Some(v) = field(id) else { continue };
        if v.contains(char::is_whitespace) {
            errors.insert(id.to_string(), "No spaces, please".into());
        } else if let Err(e) = grammar::set_option(&mut request, id, &v) {
            errors.insert(id.to_string(), e.0);
        }
    }
    if errors.is_empty() {
        Ok(request)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A submission's state as Slack sends it.
    fn values(pairs: &[(&str, &str)]) -> SlackViewState {
        let mut v = serde_json::json!({});
        for (k, val) in pairs {
            if *k == "queue" {
                v[*k] = serde_json::json!({ "value": { "type": "static_select", "selected_option": {
                    "text": { "type": "plain_text", "text": val, "emoji": true }, "value": val } } });
            } else {
                v[*k] =
                    serde_json::json!({ "value": { "type": "plain_text_input", "value": val } });
            }
        }
        serde_json::from_value(serde_json::json!({ "values": v })).expect("Slack's state shape")
    }

    #[test]
    fn errors_land_next_to_their_fields() {
        let errors = read_submission(&values(&[("gpu", "two"), ("mem", "lots")])).unwrap_err();
        assert!(errors.contains_key("queue"));
        assert!(errors["gpu"].contains("whole number"));
        assert!(errors["mem"].contains("not a size"));
        let ok = read_submission(&values(&[("queue", "3090"), ("gpu", "2")])).unwrap();
        assert_eq!(ok.gpus, Some(2));
        assert_eq!(ok.queue.as_ref().map(|q| q.as_str()), Some("3090"));
    }

    #[test]
    fn the_form_offers_the_queues_with_the_default_chosen() {
        let fleet: FleetStatus =
            serde_json::from_value(serde_json::json!({ "hosts": [], "queues": {
            "3090": { "hosts": 1, "hosts_online": 1, "gpus": 4, "gpus_free": 3, "cores": 8,
                      "cores_free": 8, "memory_bytes": 1, "memory_free": 1 },
            "cpu": { "hosts": 1, "hosts_online": 1, "gpus": 0, "gpus_free": 0, "cores": 8,
                     "cores_free": 8, "memory_bytes": 1, "memory_free": 1 },
            "a100": { "hosts": 1, "hosts_online": 1, "gpus": 8, "gpus_free": 0, "cores": 8,
                      "cores_free": 8, "memory_bytes": 1, "memory_free": 1, "waiting": 2 } } }))
            .expect("the contract's fleet shape");
        let SlackView::Modal(view) = create(&fleet, Some("3090")) else {
            panic!("not a modal");
        };
        assert_eq!(view.callback_id, Some(CALLBACK_ID.into()));
        let wire = serde_json::to_value(&view.blocks[0]).unwrap();
        assert_eq!(wire["block_id"], "queue");
        assert_eq!(wire["element"]["initial_option"]["value"], "3090");
        assert!(
            wire.to_string().contains("\"3090 — 3 of 4 GPUs free\""),
            "nobody waits for 3090: {wire}"
        );
        assert!(
            wire.to_string()
                .contains("a100 — 0 of 8 GPUs free, 2 waiting"),
            "{wire}"
        );
        assert_eq!(view.blocks.len(), 1 + FIELDS.len());
    }
}
