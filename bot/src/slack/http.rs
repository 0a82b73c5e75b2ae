//! Slack's HTTP endpoints: slash commands, interactivity, and the Events
//! API. slack-morphism's events layer checks every request's signature
//! before anything is read from it, our replay guard then refuses a
//! signature seen before, and Slack's 3-second limit is met by answering at
//! once and finishing through `response_url` when work runs long.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use slack_morphism::prelude::*;
use tracing::{debug, warn};

use super::payloads;
use super::signature::{self, Verifier};
use super::SlackApp;
use crate::views::Message;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;

/// How long a command may run before the answer goes through response_url.
const INLINE_BUDGET: Duration = Duration::from_millis(2500);

/// The largest body read. The events layer reads the whole body to check
/// its signature, with no limit of its own; Slack's payloads are far
/// smaller, and this is axum's default for extracted bodies.
const BODY_LIMIT: usize = 2 << 20;

pub struct HttpState {
    pub app: Arc<SlackApp>,
    pub verifier: Verifier,
}

pub fn router(state: Arc<HttpState>) -> Router {
    let environment = Arc::new(
        SlackClientEventsListenerEnvironment::new(state.app.web.client())
            .with_error_handler(refused),
    );
    let listener = SlackEventsAxumListener::new(environment);
    let secret = state.verifier.secret();
    let fresh = middleware::from_fn_with_state(state.clone(), refuse_replays);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/slack/commands",
            post(commands)
                .layer(fresh.clone())
                .layer(listener.events_layer(secret)),
        )
        .route(
            "/slack/interactions",
            post(interactions)
                .layer(fresh.clone())
                .layer(listener.events_layer(secret)),
        )
        .route(
            "/slack/events",
            post(events)
                .layer(fresh)
                .layer(listener.events_layer(secret)),
        )
        .layer(middleware::map_request(limit_body))
        .with_state(state)
}

async fn limit_body(request: Request) -> Request {
    request.map(|body| Body::new(http_body_util::Limited::new(body, BODY_LIMIT)))
}

/// The events layer's answer to a request it refused (unsigned, forged,
/// stale, unreadable). A plain function: that is what the crate takes.
fn refused(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> StatusCode {
    let status = signature::refusal(err.as_ref());
    warn!(reason = %crate::chain(err.as_ref()), status = status.as_u16(), "refused a Slack request");
    status
}

/// Runs after the events layer, so only verified signatures are remembered.
async fn refuse_replays(
    State(state): State<Arc<HttpState>>,
    request: Request,
    next: Next,
) -> Response {
    let signature = request
        .headers()
        .get(SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // This process's memory first (no round trip for a burst of replays),
    // then the orchestrator's, which every bot replica shares.
    if let Err(e) = state.verifier.first_time(signature) {
        warn!(reason = %e, "refused a Slack request");
        return reject(StatusCode::UNAUTHORIZED, &e);
    }
    match state
        .app
        .bot
        .orch
        .once(&format!("slack-seen:{signature}"))
        .await
    {
        Ok(true) => next.run(request).await,
        Ok(false) => {
            warn!(reason = %signature::Replayed, "refused a Slack request (another replica had it)");
            reject(StatusCode::UNAUTHORIZED, &signature::Replayed)
        }
        // Without the shared guard a replay could act twice: refuse, and
        // Slack retries (it retries on 5xx).
        Err(e) => {
            warn!(error = %crate::chain(&e), "cannot check a Slack request for replays");
            reject(StatusCode::SERVICE_UNAVAILABLE, &e)
        }
    }
}

#[derive(serde::Serialize)]
struct Refusal {
    error: String,
}

fn reject(status: StatusCode, error: &dyn std::error::Error) -> Response {
    let error = error.to_string();
    (status, Json(Refusal { error })).into_response()
}

fn undecodable(error: &dyn std::error::Error) -> Response {
    debug!(error = %crate::chain(error), "an undecodable Slack request");
    reject(StatusCode::BAD_REQUEST, error)
}

pub fn ephemeral(message: &Message) -> SlackCommandEventResponse {
    SlackCommandEventResponse::new(message.to_slack())
        .with_response_type(SlackMessageResponseType::Ephemeral)
}

async fn commands(State(state): State<Arc<HttpState>>, body: String) -> Response {
    let cmd = match payloads::command(&body) {
        Ok(c) => c,
        Err(e) => return undecodable(&e),
    };
    debug!(command = %cmd.command.0, user = %cmd.user_id.0, "slash command");
    let app = state.app.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let in_flight = app.in_flight.clone();
    in_flight.spawn(async move {
        let answer = app.slash(&cmd).await;
        if let Err(Some(message)) = tx.send(answer) {
            // The inline budget passed: finish through response_url.
            if let Err(e) = app.web.respond(&cmd.response_url, &message).await {
                warn!(error = %crate::chain(&e), "cannot send a late answer");
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
            // The work goes on and answers through response_url.
            Json(ephemeral(&Message::says(
                ":hourglass_flowing_sand: Working on it…",
            )))
            .into_response()
        }
    }
}

async fn interactions(State(state): State<Arc<HttpState>>, body: String) -> Response {
    let event = match payloads::interaction(&body) {
        Ok(e) => e,
        Err(e) => return undecodable(&e),
    };
    match state.app.interact(event).await {
        Ok(answer) => answer.into_response(),
        Err(e) => undecodable(&e),
    }
}

async fn events(State(state): State<Arc<HttpState>>, body: String) -> Response {
    match payloads::push_event(&body) {
        Err(e) => undecodable(&e),
        // Slack's URL check: the challenge back, as `{"challenge": …}`.
        Ok(SlackPushEvent::UrlVerification(check)) => Json(check).into_response(),
        Ok(SlackPushEvent::EventCallback(event)) => {
            state.app.on_event(&event);
            StatusCode::OK.into_response()
        }
        Ok(SlackPushEvent::AppRateLimited(limited)) => {
            warn!(team = %limited.team_id, "Slack is dropping our events: rate limited");
            StatusCode::OK.into_response()
        }
    }
}
