//! The create modal (`/vessel create` with no options): a queue select that
//! shows free GPUs per queue, and the other options as optional fields. A
//! submission is checked with the same parser as the command, field by
//! field, so errors appear next to the field.

use std::collections::BTreeMap;

// Not a Slack payload: the orchestrator's JSON, as its client returns it
// today; it becomes the typed API views when that client lands (issue 9).
use serde_json::Value;
use slack_morphism::prelude::{
    SlackActionId, SlackBlock, SlackBlockChoiceItem, SlackBlockId, SlackBlockPlainText,
    SlackBlockPlainTextInputElement, SlackBlockPlainTextOnly, SlackBlockStaticSelectElement,
    SlackInputBlock, SlackModalView, SlackView, SlackViewState,
};

use crate::commands::{self, Command, CreateArgs, VesselCommand};

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

/// The form. `fleet` is the orchestrator's fleet view (the API client's
/// JSON), read for the queues and their free GPUs.
pub fn create(fleet: &Value, default_queue: Option<&str>) -> SlackView {
    let options: Vec<SlackBlockChoiceItem<SlackBlockPlainTextOnly>> = fleet["queues"]
        .as_object()
        .map(|queues| {
            queues
                .iter()
                .map(|(name, q)| {
                    SlackBlockChoiceItem::new(
                        plain(&format!(
                            "{name} — {} of {} GPUs free",
                            q["gpus_free"].as_i64().unwrap_or(0),
                            q["gpus"].as_i64().unwrap_or(0)
                        )),
                        name.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
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

/// Reads a submission's `view.state` into create arguments, or the errors
/// to show, keyed by block id.
pub fn read_submission(state: &SlackViewState) -> Result<CreateArgs, BTreeMap<String, String>> {
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
    let mut words = Vec::new();
    match field("queue") {
        Some(q) => words.push(("queue", q)),
        None => {
            errors.insert("queue".into(), "Pick a queue".into());
        }
    }
    for (id, _, _) in FIELDS {
        if let Some(v) = field(id) {
            if v.contains(char::is_whitespace) {
                errors.insert(id.to_string(), "No spaces, please".into());
                continue;
            }
            words.push((id, v));
        }
    }
    // Each field alone first, so every error lands next to its own field.
    for (id, value) in &words {
        if let Err(e) = commands::parse("/vessel", &format!("create {id}={value}")) {
            errors.insert(id.to_string(), e.message);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let text = words
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    match commands::parse("/vessel", &format!("create {text}")) {
        Ok(Command::Vessel(VesselCommand::Create(args))) => Ok(args),
        Ok(_) => Err(BTreeMap::from([("queue".into(), "Pick a queue".into())])),
        Err(e) => Err(BTreeMap::from([("queue".into(), e.message)])),
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
        assert_eq!(ok.queue.as_deref(), Some("3090"));
    }

    #[test]
    fn the_form_offers_the_queues_with_the_default_chosen() {
        let fleet = serde_json::json!({ "queues": {
            "3090": { "gpus": 4, "gpus_free": 3 }, "cpu": { "gpus": 0, "gpus_free": 0 } } });
        let SlackView::Modal(view) = create(&fleet, Some("3090")) else {
            panic!("not a modal");
        };
        assert_eq!(view.callback_id, Some(CALLBACK_ID.into()));
        let wire = serde_json::to_value(&view.blocks[0]).unwrap();
        assert_eq!(wire["block_id"], "queue");
        assert_eq!(wire["element"]["initial_option"]["value"], "3090");
        assert!(
            wire.to_string().contains("3090 — 3 of 4 GPUs free"),
            "{wire}"
        );
        assert_eq!(view.blocks.len(), 1 + FIELDS.len());
    }
}
