//! What the bot says, as pure functions: a `Message` is rendered as Block
//! Kit for Slack and as text (buttons as numbered choices) for the console.

pub mod fleet;
pub mod home;
pub mod modal;
pub mod vessel;

use serde_json::{json, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// Plain fallback: notifications, screen readers, the console.
    pub text: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Header(String),
    /// mrkdwn
    Section(String),
    /// Preformatted, ready to copy.
    Code(String),
    /// Label/value pairs shown two per row.
    Fields(Vec<(String, String)>),
    Actions(Vec<Button>),
    Context(String),
    Divider,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    pub label: String,
    pub action_id: String,
    pub value: String,
    pub style: Option<&'static str>,
    pub url: Option<String>,
    pub confirm: Option<Confirm>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub title: String,
    pub text: String,
    pub yes: String,
    pub no: String,
}

impl Button {
    pub fn action(label: &str, action_id: &str, value: &str) -> Self {
        Button {
            label: label.into(),
            action_id: action_id.into(),
            value: value.into(),
            style: None,
            url: None,
            confirm: None,
        }
    }

    pub fn link(label: &str, action_id: &str, url: &str) -> Self {
        Button {
            url: Some(url.into()),
            ..Button::action(label, action_id, "")
        }
    }

    pub fn danger(mut self) -> Self {
        self.style = Some("danger");
        self
    }

    pub fn primary(mut self) -> Self {
        self.style = Some("primary");
        self
    }

    pub fn confirm(mut self, title: &str, text: &str, yes: &str) -> Self {
        self.confirm = Some(Confirm {
            title: title.into(),
            text: text.into(),
            yes: yes.into(),
            no: "Cancel".into(),
        });
        self
    }
}

fn plain(text: &str) -> Value {
    json!({ "type": "plain_text", "text": truncate(text, 150), "emoji": true })
}

fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": truncate(text, 3000) })
}

/// Slack rejects over-long fields; cut on a char boundary and say so.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

impl Message {
    pub fn new(text: impl Into<String>) -> Self {
        Message {
            text: text.into(),
            blocks: Vec::new(),
        }
    }

    pub fn block(mut self, block: Block) -> Self {
        self.blocks.push(block);
        self
    }

    /// A message of one section: the usual reply.
    pub fn says(text: impl Into<String>) -> Self {
        let text = text.into();
        Message::new(text.clone()).block(Block::Section(text))
    }

    pub fn buttons(&self) -> Vec<&Button> {
        self.blocks
            .iter()
            .flat_map(|b| match b {
                Block::Actions(buttons) => buttons.iter().collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    pub fn to_blocks(&self) -> Vec<Value> {
        self.blocks
            .iter()
            .map(|block| match block {
                Block::Header(t) => json!({ "type": "header", "text": plain(t) }),
                Block::Section(t) => json!({ "type": "section", "text": mrkdwn(t) }),
                Block::Code(t) => {
                    json!({ "type": "section", "text": mrkdwn(&format!("```{t}```")) })
                }
                Block::Fields(fields) => json!({
                    "type": "section",
                    "fields": fields.iter().take(10)
                        .map(|(k, v)| mrkdwn(&format!("*{k}*\n{v}")))
                        .collect::<Vec<_>>(),
                }),
                Block::Actions(buttons) => json!({
                    "type": "actions",
                    "elements": buttons.iter().map(button_json).collect::<Vec<_>>(),
                }),
                Block::Context(t) => json!({ "type": "context", "elements": [mrkdwn(t)] }),
                Block::Divider => json!({ "type": "divider" }),
            })
            .collect()
    }

    /// The console's rendering: buttons become numbered choices.
    pub fn to_text(&self) -> String {
        let mut out = Vec::new();
        let mut n = 0;
        for block in &self.blocks {
            match block {
                Block::Header(t) => out.push(format!("== {t} ==")),
                Block::Section(t) | Block::Context(t) => out.push(unmark(t)),
                Block::Code(t) => out.push(
                    t.lines()
                        .map(|l| format!("    {l}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                Block::Fields(fields) => out.push(
                    fields
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", unmark(v)))
                        .collect::<Vec<_>>()
                        .join("   "),
                ),
                Block::Actions(buttons) => {
                    let choices: Vec<String> = buttons
                        .iter()
                        .map(|b| {
                            n += 1;
                            match &b.url {
                                Some(url) => format!("[{n}] {} ({url})", b.label),
                                None => format!("[{n}] {}", b.label),
                            }
                        })
                        .collect();
                    out.push(choices.join("  "));
                }
                Block::Divider => out.push("—".repeat(20)),
            }
        }
        if out.is_empty() {
            self.text.clone()
        } else {
            out.join("\n")
        }
    }
}

fn button_json(b: &Button) -> Value {
    let mut v = json!({
        "type": "button",
        "text": plain(&b.label),
        "action_id": b.action_id,
    });
    if !b.value.is_empty() {
        v["value"] = json!(b.value);
    }
    if let Some(style) = b.style {
        v["style"] = json!(style);
    }
    if let Some(url) = &b.url {
        v["url"] = json!(url);
    }
    if let Some(c) = &b.confirm {
        v["confirm"] = json!({
            "title": plain(&c.title),
            "text": mrkdwn(&c.text),
            "confirm": plain(&c.yes),
            "deny": plain(&c.no),
            "style": "danger",
        });
    }
    v
}

/// mrkdwn to plain text for a terminal, Slack's emoji codes as emoji.
fn unmark(t: &str) -> String {
    const EMOJI: &[(&str, &str)] = &[
        (":warning:", "⚠️"),
        (":hourglass_flowing_sand:", "⏳"),
        (":hourglass:", "⌛"),
        (":wastebasket:", "🗑️"),
        (":key:", "🔑"),
        (":anchor:", "⚓"),
        (":x:", "❌"),
        (":construction:", "🚧"),
        (":white_check_mark:", "✅"),
        (":rotating_light:", "🚨"),
        (":zzz:", "💤"),
        (":ok_hand:", "👌"),
        (":boom:", "💥"),
        (":grey_question:", "❔"),
    ];
    let mut out = t.replace(['*', '`'], "");
    for (code, emoji) in EMOJI {
        out = out.replace(code, emoji);
    }
    out
}

/// An error as every command shows it: the problem, then the usage line.
pub fn error(message: &str, usage: Option<&str>) -> Message {
    let mut m = Message::says(format!(":warning: {message}"));
    m.text = message.to_string();
    if let Some(usage) = usage {
        m = m.block(Block::Context(format!("Usage: `{usage}`")));
    }
    m
}

/// Bytes as people read them.
pub fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    for (unit, scale) in [("T", 1u64 << 40), ("G", 1 << 30), ("M", 1 << 20)] {
        if b >= scale as f64 {
            let v = b / scale as f64;
            return if (v - v.round()).abs() < 0.05 {
                format!("{}{unit}", v.round())
            } else {
                format!("{v:.1}{unit}")
            };
        }
    }
    format!("{b}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_render_as_block_kit_and_as_numbered_choices() {
        let m = Message::says("hello").block(Block::Actions(vec![
            Button::action("Extend 24h", "vessel.extend", "id-1"),
            Button::action("Kill", "vessel.kill", "id-1")
                .danger()
                .confirm("Kill it?", "Gone for good.", "Kill"),
        ]));
        let blocks = m.to_blocks();
        assert_eq!(blocks[1]["elements"][1]["style"], "danger");
        assert_eq!(
            blocks[1]["elements"][1]["confirm"]["confirm"]["text"],
            "Kill"
        );
        assert_eq!(m.to_text(), "hello\n[1] Extend 24h  [2] Kill");
        assert_eq!(size(2 << 30), "2G");
    }
}
