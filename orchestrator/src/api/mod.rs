//! The orchestrator's HTTP API (axum, JSON). Every route but the `PUBLIC`
//! ones (`/health`, where to sign in) requires a bearer token, and one table (`ROUTES`) says which permissions
//! open each route; a middleware enforces it before any handler runs.
//! Handlers add what depends on the target (your own vessel, or any with
//! `vessels:manage:any`).

pub(crate) mod audit;
pub mod auth;
mod bot_state;
pub mod error;
mod events;
pub(crate) mod fleet;
pub(crate) mod hosts;
mod keys;
pub(crate) mod line;
mod sign_in;
pub(crate) mod users;
pub(crate) mod vessels;

use std::sync::Arc;

use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use sqlx::PgPool;

use crate::config::Config;
use auth::perm::*;
use error::ApiError;

/// A route and the permissions that open it (any one of them).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub perms: &'static [&'static str],
}

const fn route(method: &'static str, path: &'static str, perms: &'static [&'static str]) -> Route {
    Route {
        method,
        path,
        perms,
    }
}

/// The routes anyone may call without a token: health, and where to sign
/// in (a client needs it before it has a token).
pub const PUBLIC: &[&str] = &["/health", "/v1/auth/config"];

/// Every authenticated route. Adding a route to the router without a row
/// here answers 500 (and the route × role test fails), never "open".
pub const ROUTES: &[Route] = &[
    route("GET", "/metrics", &[FLEET_READ]),
    route("GET", "/v1/me", &[VESSELS_READ]),
    route("GET", "/v1/me/keys", &[VESSELS_READ]),
    route("POST", "/v1/me/keys", &[VESSELS_CREATE]),
    route("DELETE", "/v1/me/keys/{fingerprint}", &[VESSELS_CREATE]),
    route("GET", "/v1/vessels", &[VESSELS_READ]),
    route("POST", "/v1/vessels", &[VESSELS_CREATE]),
    route("GET", "/v1/vessels/{vessel}", &[VESSELS_READ]),
    route(
        "DELETE",
        "/v1/vessels/{vessel}",
        &[VESSELS_CREATE, VESSELS_MANAGE_ANY],
    ),
    route(
        "POST",
        "/v1/vessels/{vessel}/extend",
        &[VESSELS_CREATE, VESSELS_MANAGE_ANY],
    ),
    route(
        "POST",
        "/v1/vessels/{vessel}/keep",
        &[VESSELS_CREATE, VESSELS_MANAGE_ANY],
    ),
    route("GET", "/v1/fleet", &[FLEET_READ]),
    route("GET", "/v1/events", &[EVENTS_READ]),
    route("POST", "/v1/hosts/{name}/drain", &[FLEET_MANAGE]),
    route("POST", "/v1/hosts/{name}/undrain", &[FLEET_MANAGE]),
    route("GET", "/v1/bot/state/{key}", &[BOT_STATE]),
    route("PUT", "/v1/bot/state/{key}", &[BOT_STATE]),
    route("POST", "/v1/bot/once/{key}", &[BOT_STATE]),
    route("GET", "/v1/audit", &[AUDIT_READ]),
    route("GET", "/v1/users", &[FLEET_MANAGE]),
    route("PUT", "/v1/users/{subject}", &[FLEET_MANAGE]),
    route("PUT", "/v1/users/{subject}/limits/{queue}", &[FLEET_MANAGE]),
    route("GET", "/v1/line", &[FLEET_READ]),
    route("POST", "/v1/line/{vessel}/front", &[VESSELS_MANAGE_ANY]),
];

/// Authenticates, then checks the route's row in `ROUTES`.
async fn authorize(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(path) = matched.map(|m| m.as_str().to_owned()) else {
        return next.run(req).await;
    };
    if PUBLIC.contains(&path.as_str()) {
        return next.run(req).await;
    }
    let caller = match auth::Caller::authenticate(req.headers(), &state).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let method = req.method().as_str().to_owned();
    let Some(route) = ROUTES.iter().find(|r| r.method == method && r.path == path) else {
        return ApiError::bug(format!("{method} {path} has no row in ROUTES")).into_response();
    };
    if !route.perms.iter().any(|p| caller.can(p)) {
        return ApiError::Forbidden(format!(
            "{method} {path} needs one of: {}",
            route.perms.join(", ")
        ))
        .into_response();
    }
    // "From where" for the audit log: the peer, and what a relaying client
    // (the bot) says it relays.
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    // Only the service issuer's tokens (the bot) relay for others; anyone
    // else's header would put words in the audit log.
    let via = req
        .headers()
        .get("x-vessel-via")
        .filter(|_| caller.from_service)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(|v| format!(" via {v}"))
        .unwrap_or_default();
    req.extensions_mut().insert(caller);
    crate::store::audit::SOURCE
        .scope(format!("{peer}{via}"), next.run(req))
        .await
}

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub verifier: Arc<auth::Verifier>,
    pub clock: Arc<dyn crate::clock::Clock>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/auth/config", get(sign_in::config))
        .route("/metrics", get(crate::metrics::render))
        .route("/v1/me", get(keys::me))
        .route("/v1/me/keys", get(keys::list).post(keys::add))
        .route("/v1/me/keys/{fingerprint}", delete(keys::remove))
        .route("/v1/vessels", get(vessels::list).post(vessels::create))
        .route(
            "/v1/vessels/{vessel}",
            get(vessels::show).delete(vessels::kill),
        )
        .route("/v1/vessels/{vessel}/extend", post(vessels::extend))
        .route("/v1/vessels/{vessel}/keep", post(vessels::keep))
        .route("/v1/fleet", get(fleet::status))
        .route("/v1/events", get(events::poll))
        .route("/v1/hosts/{name}/drain", post(hosts::drain))
        .route("/v1/hosts/{name}/undrain", post(hosts::undrain))
        .route(
            "/v1/bot/state/{key}",
            get(bot_state::get).put(bot_state::put),
        )
        .route("/v1/bot/once/{key}", post(bot_state::once))
        .route("/v1/audit", get(audit::list))
        .route("/v1/users", get(users::list))
        .route("/v1/users/{subject}", axum::routing::put(users::set))
        .route(
            "/v1/users/{subject}/limits/{queue}",
            axum::routing::put(line::set_limits),
        )
        .route("/v1/line", get(line::show))
        .route("/v1/line/{vessel}/front", post(line::to_front))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        // After the route layer: the portal's pages sign in by session
        // cookie, not bearer token, and check the same ROUTES rows itself.
        .merge(crate::portal::router(&state))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(tower::limit::ConcurrencyLimitLayer::new(512))
        .layer(axum::middleware::from_fn(crate::telemetry::request_span))
}

/// The largest body the API reads: a request is a few fields and a key.
pub const MAX_BODY: usize = 256 * 1024;

/// A JSON body whose errors name the field (`gpus: invalid type …`) and come
/// back as our JSON error, not axum's plain text.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::Invalid {
                field: None,
                message: "send a JSON body with Content-Type: application/json".into(),
            });
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge(format!("the body is larger than {} KiB", MAX_BODY / 1024))
                } else {
                    ApiError::Invalid {
                        field: None,
                        message: format!("cannot read the body: {e}"),
                    }
                }
            })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let field = (path != ".").then_some(path);
                ApiError::Invalid {
                    message: match &field {
                        Some(f) => format!("{f}: {inner}"),
                        None => format!("the body is not valid: {inner}"),
                    },
                    field,
                }
            })
    }
}
