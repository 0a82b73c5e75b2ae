//! The Slack transport: inbound requests (HTTP, signature-checked; or Socket
//! Mode), outbound Web API calls, and the Slack inbox for events.

pub mod http;
pub mod payloads;
pub mod signature;
pub mod socket;
pub mod web;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::warn;

use crate::actions::Bot;
use crate::commands::{self, Command, VesselCommand};
use crate::events::Inbox;
use crate::orchestrator::Actor;
use crate::views::{self, home, modal, Message};
use web::{MessageRef, SlackWeb};

/// Everything a Slack request handler needs.
pub struct SlackApp {
    pub bot: Arc<Bot>,
    pub web: Arc<SlackWeb>,
    pub admin_channel: Option<String>,
    /// Slack user → unix name, learned from users.info; rebuildable.
    names: Mutex<HashMap<String, Option<String>>>,
}

/// A slash command, whichever transport brought it.
#[derive(Debug, Clone)]
pub struct SlashCommand {
    pub command: String,
    pub text: String,
    pub user_id: String,
    pub response_url: Option<String>,
    pub trigger_id: Option<String>,
}

impl SlackApp {
    pub fn new(bot: Arc<Bot>, web: Arc<SlackWeb>, admin_channel: Option<String>) -> Self {
        SlackApp {
            bot,
            web,
            admin_channel,
            names: Mutex::new(HashMap::new()),
        }
    }

    pub async fn actor(&self, user: &str) -> Actor {
        let cached = self.names.lock().expect("poisoned").get(user).cloned();
        let unix_name = match cached {
            Some(name) => name,
            None => {
                let name = self
                    .web
                    .user_name(user)
                    .await
                    .ok()
                    .flatten()
                    .map(|n| n.to_ascii_lowercase().replace('.', "-"))
                    .filter(|n| {
                        n.starts_with(|c: char| c.is_ascii_lowercase())
                            && n.len() <= 32
                            && n.chars().all(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                            })
                    });
                self.names
                    .lock()
                    .expect("poisoned")
                    .insert(user.to_string(), name.clone());
                name
            }
        };
        Actor {
            subject: user.to_string(),
            unix_name,
            admin: self.bot.is_admin(user),
        }
    }

    /// Handles a slash command: an immediate answer, or `None` when a modal
    /// was opened instead.
    pub async fn slash(&self, cmd: SlashCommand) -> Option<Message> {
        let parsed = match commands::parse(&cmd.command, &cmd.text) {
            Ok(c) => c,
            Err(e) => return Some(views::error(&e.message, Some(e.usage))),
        };
        let actor = self.actor(&cmd.user_id).await;
        if let (Command::Vessel(VesselCommand::CreateModal), Some(trigger)) =
            (&parsed, &cmd.trigger_id)
        {
            let fleet = match self.bot.orch.fleet(&actor).await {
                Ok(f) => f,
                Err(e) => return Some(views::error(&e.to_string(), None)),
            };
            let view = modal::create(&fleet, self.bot.config.default_queue.as_deref());
            return match self.web.open_modal(trigger, view).await {
                Ok(()) => None,
                Err(e) => Some(views::error(
                    &format!(
                        "cannot open the form ({e}); use `/vessel create queue=… gpu=…` instead"
                    ),
                    Some(commands::CREATE_USAGE),
                )),
            };
        }
        Some(self.bot.command(&actor, parsed).await)
    }

    /// A `view_submission` of the create modal: field errors, or `None`
    /// (close the modal) after the vessel was requested.
    pub async fn submit_create(&self, user: &str, values: &Value) -> Result<(), Value> {
        let request = modal::read_submission(values).map_err(|errors| errors_json(&errors))?;
        let actor = self.actor(user).await;
        let request = self
            .bot
            .with_default_queue(request)
            .map_err(|m| errors_json(&[("queue".to_string(), m.text)].into()))?;
        match self.bot.orch.create(&actor, &request).await {
            Ok(v) => {
                let msg = views::vessel::provisioning(&v);
                if let Err(e) = self.web.post_dm(user, &msg).await {
                    warn!(error = %e, "cannot DM the provisioning notice");
                }
                Ok(())
            }
            Err(e) => {
                let block = match e.field() {
                    Some("gpus") => "gpu",
                    Some("cpus") => "cpu",
                    Some("memory") => "mem",
                    Some("lifetime") => "for",
                    Some(f @ ("image" | "name" | "queue")) => f,
                    _ => "queue",
                };
                Err(errors_json(&[(block.to_string(), e.to_string())].into()))
            }
        }
    }

    /// A button press: act, then answer the user where they pressed.
    pub async fn press(&self, user: &str, action: &Value, response_url: Option<&str>) {
        let actor = self.actor(user).await;
        let action_id = action["action_id"].as_str().unwrap_or("");
        let value = action["value"].as_str().unwrap_or("");
        let Some(message) = self.bot.button(&actor, action_id, value).await else {
            return;
        };
        let sent = match response_url {
            Some(url) => self.web.respond(url, &message).await,
            None => self.web.post_dm(user, &message).await.map(|_| ()),
        };
        if let Err(e) = sent {
            warn!(error = %e, "cannot answer a button");
        }
    }

    pub async fn publish_home(&self, user: &str) {
        let actor = self.actor(user).await;
        let vessels = self
            .bot
            .orch
            .list(&actor)
            .await
            .map(|l| l.vessels)
            .unwrap_or_default();
        if let Err(e) = self.web.publish_home(user, home::home(&vessels)).await {
            warn!(error = %e, "cannot publish App Home");
        }
    }
}

fn errors_json(errors: &std::collections::BTreeMap<String, String>) -> Value {
    serde_json::json!({ "response_action": "errors", "errors": errors })
}

/// Delivers events as Slack DMs. Subjects that are not Slack user ids
/// (console or API users) are not Slack's to deliver.
pub struct SlackInbox {
    pub web: Arc<SlackWeb>,
    pub admin_channel: Option<String>,
}

impl Inbox for SlackInbox {
    fn wants(&self, user: &str) -> bool {
        !user.is_empty()
            && user.len() <= 32
            && user.starts_with(['U', 'W'])
            && user
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }

    async fn post(&self, user: &str, message: &Message) -> Result<Option<MessageRef>, String> {
        self.web
            .post_dm(user, message)
            .await
            .map(Some)
            .map_err(|e| e.to_string())
    }

    async fn update(&self, at: &MessageRef, message: &Message) -> Result<(), String> {
        self.web
            .update(at, message)
            .await
            .map_err(|e| e.to_string())
    }

    async fn admin(&self, message: &Message) -> Result<(), String> {
        match &self.admin_channel {
            Some(channel) => self
                .web
                .post(channel, message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}
