//! Decoding what Slack sends into slack-morphism's types: slash-command
//! forms (`SlackCommandEvent`), interaction payloads (`SlackInteractionEvent`)
//! and Events API bodies (`SlackPushEvent`), then the few cases the bot acts
//! on. Pure functions, so the fuzzer reaches exactly the code that serves
//! Slack; nothing here trusts its input.
//!
//! Our own code, a few lines: slack-morphism's axum layer can decode too
//! (`SlackEventsExtractors::command_event()` …), but its extractor trait is
//! private to the crate, so that decoding cannot be called, or fuzzed, from
//! outside the layer. The layer checks signatures; these functions decode
//! into the same types by the same serde models (a command form through
//! serde_urlencoded instead of the crate's hand-picked fields).

use slack_morphism::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a slash command form")]
    Command(#[source] serde_urlencoded::de::Error),
    #[error("no `payload` field")]
    NoPayload,
    #[error("not an interaction payload")]
    Interaction(#[source] serde_json::Error),
    #[error("not an Events API body")]
    Event(#[source] serde_json::Error),
}

/// Why an interaction that decoded is still not one the bot can act on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("the payload names no user")]
    NoUser,
    #[error("block_actions without actions")]
    NoActions,
}

/// What the bot does with an interaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Interaction {
    /// A button pressed on one of our messages or on App Home.
    Press {
        user: SlackUserId,
        action: Box<SlackInteractionActionInfo>,
        response_url: Option<SlackResponseUrl>,
    },
    /// The create modal was submitted.
    SubmitCreate {
        user: SlackUserId,
        state: SlackViewState,
    },
    /// Anything else (other views, shortcuts, …): acknowledged, not acted on.
    Other,
}

/// A slash command's form body.
pub fn command(body: &str) -> Result<SlackCommandEvent, DecodeError> {
    serde_urlencoded::from_str(body).map_err(DecodeError::Command)
}

/// An interaction's form body: JSON in its `payload` field.
pub fn interaction(body: &str) -> Result<SlackInteractionEvent, DecodeError> {
    let payload = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or(DecodeError::NoPayload)?;
    serde_json::from_str(&payload).map_err(DecodeError::Interaction)
}

/// An Events API body.
pub fn push_event(body: &str) -> Result<SlackPushEvent, DecodeError> {
    serde_json::from_str(body).map_err(DecodeError::Event)
}

/// What an interaction asks of the bot.
pub fn route(event: SlackInteractionEvent, create_callback: &str) -> Result<Interaction, Unusable> {
    match event {
        SlackInteractionEvent::BlockActions(e) => Ok(Interaction::Press {
            user: e.user.ok_or(Unusable::NoUser)?.id,
            action: e
                .actions
                .and_then(|a| a.into_iter().next())
                .map(Box::new)
                .ok_or(Unusable::NoActions)?,
            response_url: e.response_url,
        }),
        SlackInteractionEvent::ViewSubmission(e) => {
            let callback = match &e.view.view {
                SlackView::Modal(m) => m.callback_id.as_ref(),
                SlackView::Home(h) => h.callback_id.as_ref(),
            };
            if callback.map(|c| c.0.as_str()) != Some(create_callback) {
                return Ok(Interaction::Other);
            }
            Ok(Interaction::SubmitCreate {
                user: e.user.id,
                // A form with no input touched may come without a state.
                state: e
                    .view
                    .state_params
                    .state
                    .unwrap_or_else(|| SlackViewState::new(Default::default())),
            })
        }
        _ => Ok(Interaction::Other),
    }
}

/// The user whose App Home tab was opened, if that is what the event is.
pub fn home_opened(event: &SlackPushEventCallback) -> Option<&SlackUserId> {
    match &event.event {
        SlackEventCallbackBody::AppHomeOpened(e) => Some(&e.user),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    #[test]
    fn a_slash_command_form_decodes_and_a_partial_one_is_refused() {
        let body = form(&[
            ("team_id", "T0LAB"),
            ("channel_id", "C1"),
            ("user_id", "UALICE"),
            ("command", "/vessel"),
            ("text", "create gpu=1"),
            ("response_url", "https://hooks.slack.com/commands/T0LAB/1/x"),
            ("trigger_id", "1.2.3"),
        ]);
        let cmd = command(&body).unwrap();
        assert_eq!(cmd.user_id, "UALICE".into());
        assert_eq!(cmd.text.as_deref(), Some("create gpu=1"));
        assert!(command("text=hi").is_err());
        assert!(command("").is_err());
    }

    #[test]
    fn a_button_press_and_a_form_submission_route_to_their_handlers() {
        let press = serde_json::json!({
            "type": "block_actions",
            "api_app_id": "A0VESSEL",
            "user": { "id": "UALICE", "team_id": "T0LAB" },
            "team": { "id": "T0LAB" },
            "container": { "type": "message", "message_ts": "1.2", "channel_id": "D1" },
            "trigger_id": "1.2.3",
            "response_url": "https://hooks.slack.com/actions/T0LAB/1/x",
            "actions": [{ "type": "button", "action_id": "vessel.kill", "block_id": "b",
                          "value": "id-1", "action_ts": "1" }],
        });
        let body = form(&[("payload", &press.to_string())]);
        let Interaction::Press {
            user,
            action,
            response_url,
        } = route(interaction(&body).unwrap(), "vessel.create").unwrap()
        else {
            panic!("not a press");
        };
        assert_eq!(user, "UALICE".into());
        assert_eq!(action.value.as_deref(), Some("id-1"));
        assert!(response_url.is_some());

        let submit = |callback: &str| {
            serde_json::json!({
                "type": "view_submission",
                "user": { "id": "UBOB" },
                "team": { "id": "T0LAB" },
                "view": { "type": "modal", "id": "V1", "team_id": "T0LAB", "hash": "h",
                          "callback_id": callback, "title": { "type": "plain_text", "text": "New vessel" },
                          "blocks": [], "state": { "values": {} } },
            })
        };
        let body = form(&[("payload", &submit("vessel.create").to_string())]);
        assert!(matches!(
            route(interaction(&body).unwrap(), "vessel.create"),
            Ok(Interaction::SubmitCreate { .. })
        ));
        let body = form(&[("payload", &submit("other").to_string())]);
        assert_eq!(
            route(interaction(&body).unwrap(), "vessel.create"),
            Ok(Interaction::Other)
        );
        assert!(interaction("payload=%7Bnope").is_err());
    }

    #[test]
    fn app_home_opened_is_recognised() {
        let body = serde_json::json!({
            "type": "event_callback", "team_id": "T0LAB", "api_app_id": "A0VESSEL",
            "event_id": "Ev1", "event_time": 1700000000,
            "event": { "type": "app_home_opened", "user": "UEVE", "channel": "D1", "tab": "home" },
        });
        let SlackPushEvent::EventCallback(cb) = push_event(&body.to_string()).unwrap() else {
            panic!("not an event callback");
        };
        assert_eq!(home_opened(&cb), Some(&"UEVE".into()));
        let check = serde_json::json!({ "type": "url_verification", "challenge": "c-1" });
        assert!(matches!(
            push_event(&check.to_string()),
            Ok(SlackPushEvent::UrlVerification(_))
        ));
    }

    proptest::proptest! {
        /// What the fuzz target checks, in miniature, on every test run:
        /// any text, including text that looks like a payload, decodes or
        /// is refused, without panicking.
        #[test]
        fn no_body_panics(
            body in "\\PC{0,200}",
            payload in r#"\{"type":"(block_actions|view_submission|event_callback)"[ -~]{0,80}\}"#,
        ) {
            for text in [body.as_str(), payload.as_str()] {
                let _ = command(text);
                let _ = push_event(text);
                let form = form(&[("payload", text)]);
                for body in [text, form.as_str()] {
                    if let Ok(event) = interaction(body) {
                        if let Ok(Interaction::SubmitCreate { state, .. }) = route(event, "vessel.create") {
                            let _ = crate::views::modal::read_submission(&state);
                        }
                    }
                }
            }
        }

        /// Whatever a user types reaches the parser as typed.
        #[test]
        fn command_text_survives_the_form(text in "\\PC{0,200}", user in "U[A-Z0-9]{2,10}") {
            let body = form(&[
                ("team_id", "T0LAB"),
                ("channel_id", "C1"),
                ("user_id", &user),
                ("command", "/vessel"),
                ("text", &text),
                ("response_url", "https://hooks.slack.com/commands/T0LAB/1/x"),
                ("trigger_id", "1.2.3"),
            ]);
            let cmd = command(&body).unwrap();
            proptest::prop_assert_eq!(cmd.text.as_deref(), Some(text.as_str()));
            proptest::prop_assert_eq!(cmd.user_id.0, user);
        }
    }
}
