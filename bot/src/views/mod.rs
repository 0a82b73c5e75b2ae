//! What the bot says, as pure functions: a `Message` is rendered as Block
//! Kit for Slack (slack-morphism's typed blocks) and as text (buttons as
//! numbered choices) for the console.

pub mod fleet;
pub mod home;
pub mod line;
pub mod modal;
pub mod vessel;

use slack_morphism::prelude::{
    SlackActionsBlock, SlackBlock, SlackBlockButtonElement, SlackBlockButtonStyle,
    SlackBlockConfirmItem, SlackBlockMarkDownText, SlackBlockPlainText, SlackBlockPlainTextOnly,
    SlackBlockText, SlackContextBlock, SlackContextBlockElement, SlackDividerBlock,
    SlackHeaderBlock, SlackMessageContent, SlackSectionBlock,
};

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
    pub style: Option<Style>,
    pub url: Option<String>,
    pub confirm: Option<Confirm>,
}

/// A button's colour; the console ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Primary,
    Danger,
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
        self.style = Some(Style::Danger);
        self
    }

    pub fn primary(mut self) -> Self {
        self.style = Some(Style::Primary);
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

fn plain(text: &str) -> SlackBlockPlainTextOnly {
    SlackBlockPlainText::new(truncate(text, 150))
        .with_emoji(true)
        .into()
}

fn mrkdwn(text: &str) -> SlackBlockMarkDownText {
    SlackBlockMarkDownText::new(truncate(text, 3000))
}

fn mrkdwn_text(text: &str) -> SlackBlockText {
    mrkdwn(text).into()
}

/// Slack rejects over-long fields; cut on a char boundary and say so. Our
/// own code: slack-morphism's block types do not enforce Slack's limits.
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

    /// Slack's rendering: the fallback text and the Block Kit blocks.
    pub fn to_slack(&self) -> SlackMessageContent {
        SlackMessageContent::new()
            .with_text(self.text.clone())
            .with_blocks(self.to_blocks())
    }

    pub fn to_blocks(&self) -> Vec<SlackBlock> {
        self.blocks
            .iter()
            .map(|block| match block {
                Block::Header(t) => SlackHeaderBlock::new(plain(t)).into(),
                Block::Section(t) => SlackSectionBlock::new().with_text(mrkdwn_text(t)).into(),
                Block::Code(t) => SlackSectionBlock::new()
                    .with_text(mrkdwn_text(&format!("```{t}```")))
                    .into(),
                // Slack allows at most ten fields in a section.
                Block::Fields(fields) => SlackSectionBlock::new()
                    .with_fields(
                        fields
                            .iter()
                            .take(10)
                            .map(|(k, v)| mrkdwn_text(&format!("*{k}*\n{v}")))
                            .collect(),
                    )
                    .into(),
                Block::Actions(buttons) => {
                    SlackActionsBlock::new(buttons.iter().map(|b| b.to_slack().into()).collect())
                        .into()
                }
                Block::Context(t) => {
                    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(mrkdwn(t))])
                        .into()
                }
                Block::Divider => SlackDividerBlock::new().into(),
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

impl Button {
    fn to_slack(&self) -> SlackBlockButtonElement {
        SlackBlockButtonElement::new(plain(&self.label))
            .with_action_id(self.action_id.as_str().into())
            .opt_value((!self.value.is_empty()).then(|| self.value.clone()))
            .opt_style(self.style.map(|s| match s {
                Style::Primary => SlackBlockButtonStyle::Primary,
                Style::Danger => SlackBlockButtonStyle::Danger,
            }))
            // A link that is not a URL would make Slack refuse the whole
            // message; the button then stays, without the link.
            .opt_url(self.url.as_deref().and_then(|u| url::Url::parse(u).ok()))
            .opt_confirm(self.confirm.as_ref().map(|c| {
                SlackBlockConfirmItem::new(
                    plain(&c.title),
                    mrkdwn_text(&c.text),
                    plain(&c.yes),
                    plain(&c.no),
                )
                .with_style("danger".into())
            }))
    }
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
        (":arrow_forward:", "▶️"),
        (":straight_ruler:", "📏"),
        (":arrow_up:", "⬆️"),
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
    use slack_morphism::prelude::SlackActionBlockElement;

    #[test]
    fn buttons_render_as_block_kit_and_as_numbered_choices() {
        let m = Message::says("hello").block(Block::Actions(vec![
            Button::action("Extend 24h", "vessel.extend", "id-1"),
            Button::action("Kill", "vessel.kill", "id-1")
                .danger()
                .confirm("Kill it?", "Gone for good.", "Kill"),
        ]));
        let blocks = m.to_blocks();
        let SlackBlock::Actions(actions) = &blocks[1] else {
            panic!("not an actions block: {blocks:?}");
        };
        let SlackActionBlockElement::Button(kill) = &actions.elements[1] else {
            panic!("not a button: {actions:?}");
        };
        assert_eq!(kill.style, Some(SlackBlockButtonStyle::Danger));
        let confirm = kill.confirm.as_ref().expect("Kill asks to confirm");
        assert_eq!(confirm.confirm, plain("Kill"));
        assert_eq!(m.to_text(), "hello\n[1] Extend 24h  [2] Kill");
        assert_eq!(size(2 << 30), "2G");
    }

    /// The typed blocks put on the wire exactly what Slack's Block Kit
    /// reference describes (and what the bot sent before it used the types).
    #[test]
    fn blocks_serialise_as_slacks_documented_json() {
        let m = Message::new("fallback")
            .block(Block::Header("Title".into()))
            .block(Block::Fields(vec![("Host".into(), "`gpu-1`".into())]))
            .block(Block::Actions(vec![
                Button::link(
                    "Open",
                    "vessel.vscode",
                    "vscode://vscode-remote/ssh-remote+x/home/a",
                )
                .primary(),
                Button::action("Kill", "vessel.kill", "id-1")
                    .danger()
                    .confirm("Kill it?", "*x* goes.", "Kill"),
            ]))
            .block(Block::Context("small".into()))
            .block(Block::Divider);
        let wire = serde_json::to_value(m.to_slack()).unwrap();
        let plain = |t: &str| serde_json::json!({ "type": "plain_text", "text": t, "emoji": true });
        assert_eq!(
            wire,
            serde_json::json!({
                "text": "fallback",
                "blocks": [
                    { "type": "header", "text": plain("Title") },
                    { "type": "section", "fields": [{ "type": "mrkdwn", "text": "*Host*\n`gpu-1`" }] },
                    { "type": "actions", "elements": [
                        { "type": "button", "text": plain("Open"), "action_id": "vessel.vscode",
                          "url": "vscode://vscode-remote/ssh-remote+x/home/a", "style": "primary" },
                        { "type": "button", "text": plain("Kill"), "action_id": "vessel.kill",
                          "value": "id-1", "style": "danger",
                          "confirm": { "title": plain("Kill it?"),
                                       "text": { "type": "mrkdwn", "text": "*x* goes." },
                                       "confirm": plain("Kill"), "deny": plain("Cancel"),
                                       "style": "danger" } },
                    ] },
                    { "type": "context", "elements": [{ "type": "mrkdwn", "text": "small" }] },
                    { "type": "divider" },
                ],
            })
        );
    }
}
