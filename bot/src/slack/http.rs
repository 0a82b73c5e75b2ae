//! Slack's HTTP endpoints: slash commands, interactivity, and the Events
//! API. Every request's signature is checked before anything is read from
//! it; Slack's 3-second limit is met by answering at once and finishing
//! through `response_url` when work runs long.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tracing::{debug, warn};

use super::signature::Verifier;
use super::{SlackApp, SlashCommand};
use crate::views::{modal, Message};

/// How long a command may run before the answer goes through response_url.
const INLINE_BUDGET: Duration = Duration::from_millis(2500);

pub struct HttpState {
    pub app: Arc<SlackApp>,
    pub verifier: Verifier,
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
        .with_state(state)
}

fn reject(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn verified(state: &HttpState, headers: &HeaderMap, body: &Bytes) -> Result<(), Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .verifier
        .verify(
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            body,
        )
        .map_err(|e| {
            warn!(reason = %e, "refused a Slack request");
            Box::new(reject(StatusCode::UNAUTHORIZED, &e.to_string()))
        })
}

fn form(body: &Bytes) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub fn ephemeral(message: &Message) -> Value {
    json!({
        "response_type": "ephemeral",
        "text": message.text,
        "blocks": message.to_blocks(),
    })
}

async fn commands(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = verified(&state, &headers, &body) {
        return *r;
    }
    let f = form(&body);
    let (Some(command), Some(user_id)) = (f.get("command"), f.get("user_id")) else {
        return reject(StatusCode::BAD_REQUEST, "not a slash command payload");
    };
    let cmd = SlashCommand {
        command: command.clone(),
        text: f.get("text").cloned().unwrap_or_default(),
        user_id: user_id.clone(),
        response_url: f.get("response_url").cloned(),
        trigger_id: f.get("trigger_id").cloned(),
    };
    debug!(command = %cmd.command, user = %cmd.user_id, "slash command");
    let app = state.app.clone();
    let response_url = cmd.response_url.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let work = tokio::spawn(async move {
        let answer = app.slash(cmd).await;
        if let Err(answer) = tx.send(answer) {
            // The inline budget passed: finish through response_url.
            if let (Some(url), Some(message)) = (response_url, answer) {
                if let Err(e) = app.web.respond(&url, &message).await {
                    warn!(error = %e, "cannot send a late answer");
                }
            }
        }
    });
    match tokio::time::timeout(INLINE_BUDGET, rx).await {
        Ok(Ok(Some(message))) => Json(ephemeral(&message)).into_response(),
        Ok(Ok(None)) => StatusCode::OK.into_response(),
        Ok(Err(_)) => {
            warn!("a command handler failed");
            Json(ephemeral(&Message::says(
                ":boom: that went wrong on our side; try again",
            )))
            .into_response()
        }
        Err(_) => {
            drop(work);
            Json(ephemeral(&Message::says(
                ":hourglass_flowing_sand: Working on it…",
            )))
            .into_response()
        }
    }
}

async fn interactions(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = verified(&state, &headers, &body) {
        return *r;
    }
    let Some(payload) = form(&body)
        .get("payload")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    else {
        return reject(StatusCode::BAD_REQUEST, "no JSON `payload` field");
    };
    let Some(user) = payload["user"]["id"].as_str().map(str::to_string) else {
        return reject(StatusCode::BAD_REQUEST, "the payload names no user");
    };
    match payload["type"].as_str() {
        Some("block_actions") => {
            let Some(action) = payload["actions"]
                .as_array()
                .and_then(|a| a.first())
                .cloned()
            else {
                return reject(StatusCode::BAD_REQUEST, "block_actions without actions");
            };
            let response_url = payload["response_url"].as_str().map(str::to_string);
            let app = state.app.clone();
            tokio::spawn(async move { app.press(&user, &action, response_url.as_deref()).await });
            StatusCode::OK.into_response()
        }
        Some("view_submission") => {
            if payload["view"]["callback_id"] != modal::CALLBACK_ID {
                return StatusCode::OK.into_response();
            }
            let values = payload["view"]["state"]["values"].clone();
            match state.app.submit_create(&user, &values).await {
                Ok(()) => Json(json!({ "response_action": "clear" })).into_response(),
                Err(errors) => Json(errors).into_response(),
            }
        }
        Some(_) => StatusCode::OK.into_response(),
        None => reject(StatusCode::BAD_REQUEST, "the payload has no type"),
    }
}

async fn events(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = verified(&state, &headers, &body) {
        return *r;
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return reject(StatusCode::BAD_REQUEST, "not JSON");
    };
    match payload["type"].as_str() {
        Some("url_verification") => {
            Json(json!({ "challenge": payload["challenge"] })).into_response()
        }
        Some("event_callback") => {
            if payload["event"]["type"] == "app_home_opened" {
                if let Some(user) = payload["event"]["user"].as_str().map(str::to_string) {
                    let app = state.app.clone();
                    tokio::spawn(async move { app.publish_home(&user).await });
                }
            }
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}
