//! The create modal (`/vessel create` with no options): a queue select that
//! shows free GPUs per queue, and the other options as optional fields. A
//! submission is checked with the same parser as the command, field by
//! field, so errors appear next to the field.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::commands::{self, Command, CreateArgs, VesselCommand};

pub const CALLBACK_ID: &str = "vessel.create";

/// (block id, label, hint)
const FIELDS: &[(&str, &str, &str)] = &[
    ("gpu", "GPUs", "queue default"),
    ("cpu", "CPUs", "queue default"),
    ("mem", "Memory", "e.g. 64G"),
    ("image", "Image", "queue default, e.g. vessel/cuda12:latest"),
    ("name", "Name", "e.g. train (lowercase, digits, -)"),
    ("for", "Lifetime", "e.g. 2d, 24h"),
];

pub fn create(fleet: &Value, default_queue: Option<&str>) -> Value {
    let options: Vec<Value> = fleet["queues"]
        .as_object()
        .map(|queues| {
            queues
                .iter()
                .map(|(name, q)| {
                    json!({
                        "text": { "type": "plain_text", "text": format!(
                            "{name} — {} of {} GPUs free",
                            q["gpus_free"].as_i64().unwrap_or(0),
                            q["gpus"].as_i64().unwrap_or(0)) },
                        "value": name,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut select = json!({
        "type": "static_select",
        "action_id": "value",
        "placeholder": { "type": "plain_text", "text": "Pick a queue" },
        "options": options,
    });
    if let Some(q) = default_queue {
        if let Some(opt) = options.iter().find(|o| o["value"] == q) {
            select["initial_option"] = opt.clone();
        }
    }
    let mut blocks = vec![json!({
        "type": "input",
        "block_id": "queue",
        "label": { "type": "plain_text", "text": "Queue" },
        "element": select,
    })];
    for (id, label, hint) in FIELDS {
        blocks.push(json!({
            "type": "input",
            "block_id": id,
            "optional": true,
            "label": { "type": "plain_text", "text": label },
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "placeholder": { "type": "plain_text", "text": hint },
            },
        }));
    }
    json!({
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": { "type": "plain_text", "text": "New vessel" },
        "submit": { "type": "plain_text", "text": "Create" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": blocks,
    })
}

/// Reads a submission's `view.state.values` into create arguments, or the
/// errors to show, keyed by block id.
pub fn read_submission(values: &Value) -> Result<CreateArgs, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let field = |block: &str| -> Option<String> {
        let v = &values[block]["value"];
        v["value"]
            .as_str()
            .or_else(|| v["selected_option"]["value"].as_str())
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

    fn values(pairs: &[(&str, &str)]) -> Value {
        let mut v = json!({});
        for (k, val) in pairs {
            if *k == "queue" {
                v[*k] = json!({ "value": { "type": "static_select", "selected_option": { "value": val } } });
            } else {
                v[*k] = json!({ "value": { "type": "plain_text_input", "value": val } });
            }
        }
        v
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
}
