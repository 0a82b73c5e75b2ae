//! The Slack transport: inbound requests (HTTP, signature-checked; or Socket
//! Mode), outbound Web API calls, and the Slack inbox for events.

pub mod http;
pub mod payloads;
pub mod signature;
pub mod socket;
pub mod web;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use slack_morphism::prelude::*;
use tracing::warn;

use crate::actions::Bot;
use crate::commands::{self, Command, VesselCommand};
use crate::events::{DeliveryError, Inbox};
use crate::orchestrator::Actor;
use crate::shutdown::InFlight;
use crate::views::{self, home, modal, Message};
use payloads::{Interaction, Unusable};
use web::{MessageRef, SlackWeb};

/// Everything a Slack request handler needs.
pub struct SlackApp {
    pub bot: Arc<Bot>,
    pub web: Arc<SlackWeb>,
    pub admin_channel: Option<String>,
    /// The one workspace served (`[slack] team_id`); requests signed for
    /// another workspace of the same app are refused.
    pub team: Option<String>,
    /// Slack user → unix name, learned from users.info; rebuildable.
    names: Mutex<HashMap<String, Option<String>>>,
    /// What requests left running after their answer; a stop waits for it.
    pub in_flight: InFlight,
}

impl SlackApp {
    pub fn new(bot: Arc<Bot>, web: Arc<SlackWeb>, admin_channel: Option<String>) -> Self {
        SlackApp {
            bot,
            web,
            admin_channel,
            team: None,
            names: Mutex::new(HashMap::new()),
            in_flight: InFlight::default(),
        }
    }

    /// Serve only this workspace (`T…`); None serves any that can sign.
    pub fn for_team(mut self, team: Option<String>) -> Self {
        self.team = team;
        self
    }

    /// Whether a request from `team` is ours to serve.
    fn serves(&self, team: Option<&str>) -> bool {
        match (&self.team, team) {
            (None, _) => true,
            (Some(ours), Some(theirs)) => ours == theirs,
            (Some(_), None) => false,
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

    /// Handles a slash command, whichever transport brought it: an
    /// immediate answer, or `None` when a modal was opened instead.
    pub async fn slash(&self, cmd: &SlackCommandEvent) -> Option<Message> {
        if !self.serves(Some(&cmd.team_id.0)) {
            warn!(team = %cmd.team_id, "refused a command from another workspace");
            return Some(views::error(
                "This Vessel serves another Slack workspace; nothing was done.",
                None,
            ));
        }
        let text = cmd.text.as_deref().unwrap_or("");
        let parsed = match commands::parse(&cmd.command.0, text) {
            Ok(c) => c,
            Err(e) => return Some(views::error(&e.message, Some(e.usage))),
        };
        let actor = self.actor(&cmd.user_id.0).await;
        if let Command::Vessel(VesselCommand::CreateModal) = &parsed {
            let fleet = match self.bot.orch.fleet(&actor).await {
                Ok(f) => f,
                Err(e) => return Some(views::error(&e.to_string(), None)),
            };
            let view = modal::create(&fleet, self.bot.config.default_queue.as_deref());
            return match self.web.open_modal(&cmd.trigger_id, view).await {
                Ok(()) => None,
                Err(e) => Some(views::error(
                    &format!(
                        "cannot open the form ({}); use `/vessel create queue=… gpu=…` instead",
                        crate::chain(&e)
                    ),
                    Some(commands::CREATE_USAGE),
                )),
            };
        }
        Some(self.bot.command(&actor, parsed).await)
    }

    /// Handles an interaction, whichever transport brought it: a button
    /// press is acknowledged at once and answered later; a form submission
    /// is answered with its field errors, or closes the form.
    pub async fn interact(
        self: &Arc<Self>,
        event: SlackInteractionEvent,
    ) -> Result<SlackInteractionResponse, Unusable> {
        if !self.serves(payloads::interaction_team(&event)) {
            return Err(Unusable::OtherWorkspace);
        }
        Ok(match payloads::route(event, modal::CALLBACK_ID)? {
            Interaction::Press {
                user,
                action,
                response_url,
            } => {
                let app = self.clone();
                self.in_flight
                    .spawn(async move { app.press(&user, &action, response_url.as_ref()).await });
                SlackInteractionResponse::Empty
            }
            Interaction::SubmitCreate { user, state } => {
                self.submit_create(&user, &state).await.into()
            }
            Interaction::Other => SlackInteractionResponse::Empty,
        })
    }

    /// Handles an Events API event, whichever transport brought it; the
    /// work happens after Slack has its acknowledgement.
    pub fn on_event(self: &Arc<Self>, event: &SlackPushEventCallback) {
        if !self.serves(Some(&event.team_id.0)) {
            warn!(team = %event.team_id, "ignored an event from another workspace");
            return;
        }
        if let Some(user) = payloads::home_opened(event) {
            let app = self.clone();
            let user = user.0.clone();
            self.in_flight
                .spawn(async move { app.publish_home(&user).await });
        }
    }

    /// A `view_submission` of the create modal: field errors, or clear (close
    /// the modal) after the vessel was requested.
    pub async fn submit_create(
        &self,
        user: &SlackUserId,
        state: &SlackViewState,
    ) -> SlackViewSubmissionResponse {
        let request = match modal::read_submission(state) {
            Ok(request) => request,
            Err(errors) => return field_errors(errors),
        };
        let actor = self.actor(&user.0).await;
        let request = match self.bot.with_default_queue(request) {
            Ok(request) => request,
            Err(m) => return field_errors([("queue".to_string(), m.text)]),
        };
        match self.bot.orch.create(&actor, &request).await {
            Ok(v) => {
                // A form has no ephemeral answer: the notice goes by DM. A
                // request that waits gets its waiting DM from the line's
                // event instead, so it is not told twice.
                if v.state != vessel_api::VesselState::Pending {
                    let msg = crate::actions::created(&v);
                    if let Err(e) = self.web.post_dm(&user.0, &msg).await {
                        warn!(error = %crate::chain(&e), "cannot DM the provisioning notice");
                    }
                }
                SlackViewSubmissionResponse::Clear(SlackViewSubmissionClearResponse::new())
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
                field_errors([(block.to_string(), e.to_string())])
            }
        }
    }

    /// A button press: act, then answer the user where they pressed.
    pub async fn press(
        &self,
        user: &SlackUserId,
        action: &SlackInteractionActionInfo,
        response_url: Option<&SlackResponseUrl>,
    ) {
        let actor = self.actor(&user.0).await;
        let value = action.value.as_deref().unwrap_or("");
        let Some(message) = self.bot.button(&actor, &action.action_id.0, value).await else {
            return;
        };
        let sent = match response_url {
            Some(url) => self.web.respond(url, &message).await,
            None => self.web.post_dm(&user.0, &message).await.map(|_| ()),
        };
        if let Err(e) = sent {
            warn!(error = %crate::chain(&e), "cannot answer a button");
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
            warn!(error = %crate::chain(&e), "cannot publish App Home");
        }
    }
}

/// The modal's answer that shows each message next to its field (block id).
fn field_errors(errors: impl IntoIterator<Item = (String, String)>) -> SlackViewSubmissionResponse {
    SlackViewSubmissionResponse::Errors(SlackViewSubmissionErrorsResponse::new(
        errors.into_iter().collect(),
    ))
}

/// Delivers events as Slack DMs. Subjects that are not Slack user ids
/// (console or API users) are not Slack's to deliver.
pub struct SlackInbox {
    pub web: Arc<SlackWeb>,
    pub admin_channel: Option<String>,
}

/// Whether a person of the orchestrator's is a Slack user, to be sent DMs.
/// The orchestrator keys an SSO identity as `SUB@NAME` unless an admin
/// linked it to a Slack user, so an SSO `sub` shaped like a Slack user id
/// (`U0ALICE@sso`) is not one, and never receives that user's secrets.
pub fn is_slack_user(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id.starts_with(['U', 'W'])
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl Inbox for SlackInbox {
    fn wants(&self, user: &str) -> bool {
        is_slack_user(user)
    }

    async fn post(
        &self,
        user: &str,
        message: &Message,
    ) -> Result<Option<MessageRef>, DeliveryError> {
        self.web
            .post_dm(user, message)
            .await
            .map(Some)
            .map_err(DeliveryError::from)
    }

    async fn update(&self, at: &MessageRef, message: &Message) -> Result<(), DeliveryError> {
        self.web
            .update(at, message)
            .await
            .map_err(DeliveryError::from)
    }

    async fn admin(&self, message: &Message) -> Result<(), DeliveryError> {
        match &self.admin_channel {
            Some(channel) => self
                .web
                .post(channel, message)
                .await
                .map(|_| ())
                .map_err(DeliveryError::from),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_slack_user_ids_get_dms_not_sso_identities_shaped_like_them() {
        for id in ["U0ALICE", "W012ABC"] {
            assert!(super::is_slack_user(id), "{id}");
        }
        for id in [
            "U0ALICE@sso",
            "u0alice",
            "alice",
            "",
            "auth0|U0ALICE",
            "UBOSS@127.0.0.1:8080",
        ] {
            assert!(!super::is_slack_user(id), "{id}");
        }
    }
}
