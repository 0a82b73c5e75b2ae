//! Socket Mode: Slack pushes commands and interactions over a websocket the
//! bot opens (an `xapp-` token), so no public URL is needed — the likely
//! choice behind a lab firewall. Requests are the same as over HTTP and go to
//! the same handlers; Slack authenticates the socket, so there is no
//! per-request signature.

use std::sync::Arc;

use anyhow::Context;
use slack_morphism::prelude::*;

use super::http::ephemeral;
use super::SlackApp;
use crate::shutdown::Shutdown;

type Client = Arc<SlackHyperClient>;
type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn app(states: &SlackClientEventsUserState) -> Result<Arc<SlackApp>> {
    states
        .read()
        .await
        .get_user_state::<Arc<SlackApp>>()
        .cloned()
        .ok_or_else(|| "no app state".into())
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<SlackCommandEventResponse> {
    let message = app(&states)
        .await?
        .slash(&event)
        .await
        .unwrap_or_else(|| crate::views::Message::new("Opening the form…"));
    Ok(ephemeral(&message))
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<SlackInteractionResponse> {
    Ok(app(&states).await?.interact(event).await?)
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<()> {
    app(&states).await?.on_event(&event);
    Ok(())
}

/// Serves until `shutdown`, then closes the socket. (slack-morphism's own
/// `serve` waits for signals itself; the bot's stop is its one signal.)
pub async fn serve(app: Arc<SlackApp>, app_token: &str, shutdown: Shutdown) -> anyhow::Result<()> {
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
        .context("Socket Mode: cannot open the connection")?;
    listener.start().await;
    shutdown.wait().await;
    listener.shutdown().await;
    Ok(())
}
