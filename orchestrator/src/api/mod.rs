//! The orchestrator's HTTP API (axum, JSON). Every route but the `PUBLIC`
//! ones (`/health`, where to sign in) requires a bearer token, and one
//! table (`ROUTES`) names the `Action` of every route; a middleware refuses
//! a route without a row and a caller the action's permissions do not
//! allow, before any handler runs. The handlers are thin adapters over
//! `crate::ops`, which check the same action again for every other door.

pub mod auth;
pub mod error;
mod handlers;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::ops::{Action, Ctx, OpError};
use handlers as h;

/// A route and the action it performs.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub action: Action,
}

const fn route(method: &'static str, path: &'static str, action: Action) -> Route {
    Route {
        method,
        path,
        action,
    }
}

/// The routes anyone may call without a token: health, and where to sign
/// in (a client needs it before it has a token).
pub const PUBLIC: &[&str] = &["/health", "/v1/auth/config"];

/// Every authenticated route. Adding a route to the router without a row
/// here answers 500 (and the route × role test fails), never "open".
pub const ROUTES: &[Route] = &[
    route("GET", "/metrics", Action::ReadMetrics),
    route("GET", "/v1/me", Action::ShowMe),
    route("GET", "/v1/me/keys", Action::ListKeys),
    route("POST", "/v1/me/keys", Action::AddKey),
    route("DELETE", "/v1/me/keys/{fingerprint}", Action::RemoveKey),
    route("GET", "/v1/vessels", Action::ListVessels),
    route("POST", "/v1/vessels", Action::CreateVessel),
    route("GET", "/v1/vessels/{vessel}", Action::ShowVessel),
    route("DELETE", "/v1/vessels/{vessel}", Action::KillVessel),
    route("POST", "/v1/vessels/{vessel}/extend", Action::ExtendVessel),
    route("POST", "/v1/vessels/{vessel}/keep", Action::KeepVessel),
    route(
        "POST",
        "/v1/vessels/{vessel}/hibernate",
        Action::HibernateVessel,
    ),
    route("POST", "/v1/vessels/{vessel}/wake", Action::WakeVessel),
    route("GET", "/v1/fleet", Action::ReadFleet),
    route("GET", "/v1/events", Action::ReadEvents),
    route("POST", "/v1/hosts/{name}/drain", Action::DrainHost),
    route("POST", "/v1/hosts/{name}/undrain", Action::UndrainHost),
    route("GET", "/v1/bot/state/{key}", Action::BotState),
    route("PUT", "/v1/bot/state/{key}", Action::BotState),
    route("POST", "/v1/bot/once/{key}", Action::BotState),
    route("GET", "/v1/audit", Action::ReadAudit),
    route("GET", "/v1/users", Action::ListUsers),
    route("PUT", "/v1/users/{subject}", Action::SetUser),
    route("GET", "/v1/users/{subject}/links", Action::ListLinks),
    route("PUT", "/v1/users/{subject}/links", Action::LinkIdentity),
    route(
        "DELETE",
        "/v1/users/{subject}/links/{issuer}/{identity}",
        Action::UnlinkIdentity,
    ),
    route(
        "PUT",
        "/v1/users/{subject}/limits/{queue}",
        Action::SetLimits,
    ),
    route("GET", "/v1/line", Action::ReadLine),
    route("POST", "/v1/line/{vessel}/front", Action::MoveToFront),
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
    let caller = match auth::authenticate(req.headers(), &state.verifier, &state.ctx.db).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let method = req.method().as_str().to_owned();
    let Some(route) = ROUTES.iter().find(|r| r.method == method && r.path == path) else {
        return OpError::bug(format!("{method} {path} has no row in ROUTES")).into_response();
    };
    if let Err(e) = caller.require(route.action) {
        return OpError::Forbidden(format!("{method} {path}: {e}")).into_response();
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

/// What the API's handlers and the portal's pages share: the operations'
/// context, and the token verifier.
#[derive(Clone)]
pub struct AppState {
    pub ctx: Ctx,
    pub verifier: Arc<auth::Verifier>,
}

impl FromRef<AppState> for Ctx {
    fn from_ref(state: &AppState) -> Ctx {
        state.ctx.clone()
    }
}

/// The API's routes, behind the bearer-token middleware. `startup` merges
/// the portal's beside them and adds the layers both share.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/auth/config", get(h::sign_in_config))
        .route("/metrics", get(h::metrics))
        .route("/v1/me", get(h::me))
        .route("/v1/me/keys", get(h::keys).post(h::add_key))
        .route("/v1/me/keys/{fingerprint}", delete(h::remove_key))
        .route("/v1/vessels", get(h::list_vessels).post(h::create))
        .route("/v1/vessels/{vessel}", get(h::show).delete(h::kill))
        .route("/v1/vessels/{vessel}/extend", post(h::extend))
        .route("/v1/vessels/{vessel}/keep", post(h::keep))
        .route("/v1/vessels/{vessel}/hibernate", post(h::hibernate))
        .route("/v1/vessels/{vessel}/wake", post(h::wake))
        .route("/v1/fleet", get(h::fleet))
        .route("/v1/events", get(h::events))
        .route("/v1/hosts/{name}/drain", post(h::drain))
        .route("/v1/hosts/{name}/undrain", post(h::undrain))
        .route(
            "/v1/bot/state/{key}",
            get(h::bot_state_get).put(h::bot_state_put),
        )
        .route("/v1/bot/once/{key}", post(h::bot_once))
        .route("/v1/audit", get(h::audit))
        .route("/v1/users", get(h::users))
        .route("/v1/users/{subject}", put(h::set_user))
        .route("/v1/users/{subject}/links", get(h::links).put(h::link))
        .route(
            "/v1/users/{subject}/links/{issuer}/{identity}",
            delete(h::unlink),
        )
        .route("/v1/users/{subject}/limits/{queue}", put(h::set_limits))
        .route("/v1/line", get(h::line))
        .route("/v1/line/{vessel}/front", post(h::to_front))
        .route_layer(axum::middleware::from_fn_with_state(state, authorize))
}

/// The largest body the API reads: a request is a few fields and a key.
pub const MAX_BODY: usize = 256 * 1024;

/// A JSON body whose errors name the field (`gpus: invalid type …`) and come
/// back as our JSON error, not axum's plain text.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = OpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, OpError> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(OpError::Invalid {
                field: None,
                message: "send a JSON body with Content-Type: application/json".into(),
            });
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    OpError::TooLarge(format!("the body is larger than {} KiB", MAX_BODY / 1024))
                } else {
                    OpError::Invalid {
                        field: None,
                        message: format!("cannot read the body: {e}"),
                    }
                }
            })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(JsonBody)
            .map_err(|e| refused_field(e.path().to_string(), e.into_inner()))
    }
}

/// A body's refusal in the field's words: `gpus: invalid type: string
/// "two", expected u32`, without the parser's "at line 1 column 32" (a
/// form or a CLI flag has no lines).
fn refused_field(path: String, inner: serde_json::Error) -> OpError {
    let text = inner.to_string();
    let at = format!(" at line {} column {}", inner.line(), inner.column());
    let words = text.strip_suffix(&at).unwrap_or(&text);
    let field = (path != ".").then_some(path);
    OpError::Invalid {
        message: match &field {
            Some(f) => format!("{f}: {words}"),
            None => format!("the body is not valid: {words}"),
        },
        field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_field_does_not_name_the_parsers_line_and_column() {
        let bytes = br#"{"gpus": "two"}"#;
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let e = serde_path_to_error::deserialize::<_, vessel_api::vessels::CreateVessel>(de)
            .expect_err("a string is not a GPU count");
        let message = refused_field(e.path().to_string(), e.into_inner()).to_string();
        assert!(message.starts_with("gpus: "), "{message}");
        assert!(!message.contains("line 1"), "{message}");
    }

    #[test]
    fn every_route_names_an_action_once() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i]
                    .iter()
                    .any(|o| o.method == r.method && o.path == r.path),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(!r.action.perms().is_empty());
        }
    }
}
