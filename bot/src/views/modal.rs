//! The create modal (`/vessel create` with no options): a queue select that
//! shows free GPUs per queue, and the other options as optional fields. A
//! submission is checked with the same parser as the command, field by
//! field, so errors appear next to the field.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use vessel_api::fleet::FleetStatus;
use vessel_api::grammar;
use vessel_api::vessels::CreateVessel;

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

pub fn create(fleet: &FleetStatus, default_queue: Option<&str>) -> Value {
    let options: Vec<Value> = fleet
        .queues
        .iter()
        .map(|(name, q)| {
            json!({
                "text": { "type": "plain_text", "text": format!(
                    "{name} — {} of {} GPUs free", q.gpus_free, q.gpus) },
                "value": name,
            })
        })
        .collect();
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

/// Reads a submission's `view.state.values` into a create request, or the
/// errors to show, keyed by block id. Each field goes through the shared
/// grammar alone, so every error lands next to its own field.
pub fn read_submission(values: &Value) -> Result<CreateVessel, BTreeMap<String, String>> {
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
        assert_eq!(ok.queue.as_ref().map(|q| q.as_str()), Some("3090"));
    }
}
