//! Socket Mode: Slack pushes commands and interactions over a websocket the
//! bot opens (an `xapp-` token), so no public URL is needed — the likely
//! choice behind a lab firewall. Requests are the same as over HTTP and go to
//! the same handlers; Slack authenticates the socket, so there is no
//! per-request signature.

use std::sync::Arc;

use serde_json::{json, Value};
use slack_morphism::prelude::*;

use super::{SlackApp, SlashCommand};

type Client = Arc<SlackHyperClient>;
type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn app(states: &SlackClientEventsUserState) -> Option<Arc<SlackApp>> {
    states
        .read()
        .await
        .get_user_state::<Arc<SlackApp>>()
        .cloned()
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<SlackCommandEventResponse> {
    let raw = serde_json::to_value(&event)?;
    let app = app(&states).await.ok_or("no app state")?;
    let cmd = SlashCommand {
        command: raw["command"].as_str().unwrap_or("").to_string(),
        text: raw["text"].as_str().unwrap_or("").to_string(),
        user_id: raw["user_id"].as_str().unwrap_or("").to_string(),
        response_url: raw["response_url"].as_str().map(str::to_string),
        trigger_id: raw["trigger_id"].as_str().map(str::to_string),
    };
    let message = app
        .slash(cmd)
        .await
        .unwrap_or_else(|| crate::views::Message::new("Opening the form…"));
    Ok(serde_json::from_value(json!({
        "response_type": "ephemeral",
        "text": message.text,
        "blocks": message.to_blocks(),
    }))?)
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<SlackInteractionResponse> {
    let payload: Value = serde_json::to_value(&event)?;
    let app = app(&states).await.ok_or("no app state")?;
    let user = payload["user"]["id"].as_str().unwrap_or("").to_string();
    match payload["type"].as_str() {
        Some("block_actions") => {
            let action = payload["actions"][0].clone();
            let response_url = payload["response_url"].as_str().map(str::to_string);
            tokio::spawn(async move { app.press(&user, &action, response_url.as_deref()).await });
            Ok(SlackInteractionResponse::Empty)
        }
        Some("view_submission") => {
            let values = payload["view"]["state"]["values"].clone();
            match app.submit_create(&user, &values).await {
                Ok(()) => Ok(SlackInteractionResponse::Empty),
                Err(errors) => Ok(SlackInteractionResponse::ViewSubmission(
                    serde_json::from_value(errors)?,
                )),
            }
        }
        _ => Ok(SlackInteractionResponse::Empty),
    }
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<()> {
    let raw = serde_json::to_value(&event)?;
    if raw["event"]["type"] == "app_home_opened" {
        if let (Some(app), Some(user)) = (app(&states).await, raw["event"]["user"].as_str()) {
            app.publish_home(user).await;
        }
    }
    Ok(())
}

/// Runs until the process is told to stop.
pub async fn serve(app: Arc<SlackApp>, app_token: &str) -> anyhow::Result<()> {
    let client = app.web.client();
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_command_events(on_command)
        .with_interaction_events(on_interaction)
        .with_push_events(on_push);
    let environment = Arc::new(
        SlackClientEventsListenerEnvironment::new(client.clone()).with_user_state(app.clone()),
    );
    let listener = SlackClientSocketModeListener::new(
        &SlackClientSocketModeConfig::new(),
        environment,
        callbacks,
    );
    let token = SlackApiToken::new(SlackApiTokenValue(app_token.to_string()));
    listener
        .listen_for(&token)
        .await
        .map_err(|e| anyhow::anyhow!("Socket Mode: {e}"))?;
    listener.serve().await;
    Ok(())
}
