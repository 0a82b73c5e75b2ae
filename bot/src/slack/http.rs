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

use super::payloads::{self, EventBody, Interaction};
use super::signature::Verifier;
use super::SlackApp;
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
    let cmd = match payloads::command(&body) {
        Ok(c) => c,
        Err(e) => return reject(StatusCode::BAD_REQUEST, &e.to_string()),
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
    match payloads::interaction(&body) {
        Err(e) => reject(StatusCode::BAD_REQUEST, &e.to_string()),
        Ok(Interaction::BlockAction {
            user,
            action,
            response_url,
        }) => {
            let app = state.app.clone();
            tokio::spawn(async move { app.press(&user, &action, response_url.as_deref()).await });
            StatusCode::OK.into_response()
        }
        Ok(Interaction::ViewSubmission {
            user,
            callback_id,
            values,
        }) => {
            if callback_id != modal::CALLBACK_ID {
                return StatusCode::OK.into_response();
            }
            match state.app.submit_create(&user, &values).await {
                Ok(()) => Json(json!({ "response_action": "clear" })).into_response(),
                Err(errors) => Json(errors).into_response(),
            }
        }
        Ok(Interaction::Other) => StatusCode::OK.into_response(),
    }
}

async fn events(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = verified(&state, &headers, &body) {
        return *r;
    }
    match payloads::event(&body) {
        Err(e) => reject(StatusCode::BAD_REQUEST, &e.to_string()),
        Ok(EventBody::UrlVerification(challenge)) => {
            Json(json!({ "challenge": challenge })).into_response()
        }
        Ok(EventBody::AppHomeOpened { user }) => {
            let app = state.app.clone();
            tokio::spawn(async move { app.publish_home(&user).await });
            StatusCode::OK.into_response()
        }
        Ok(EventBody::Other) => StatusCode::OK.into_response(),
    }
}
