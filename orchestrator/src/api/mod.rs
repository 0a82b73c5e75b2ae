//! The orchestrator's HTTP API (axum, JSON). Every route but `/health`
//! requires a bearer token; each handler states the permission it needs.

pub mod auth;
mod bot_state;
pub mod error;
mod events;
mod fleet;
mod hosts;
mod keys;
mod vessels;

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use sqlx::PgPool;

use crate::config::Config;
use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub verifier: Arc<auth::Verifier>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
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
        .route("/v1/fleet", get(fleet::status))
        .route("/v1/events", get(events::poll))
        .route("/v1/hosts/{name}/drain", post(hosts::drain))
        .route("/v1/hosts/{name}/undrain", post(hosts::undrain))
        .route(
            "/v1/bot/state/{key}",
            get(bot_state::get).put(bot_state::put),
        )
        .with_state(state)
        .layer(tower::limit::ConcurrencyLimitLayer::new(512))
}

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
            .map_err(|e| ApiError::Invalid {
                field: None,
                message: format!("cannot read the body: {e}"),
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
