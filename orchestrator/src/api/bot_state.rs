//! A small key-value store for the bot (its event cursor, the Slack message
//! of each vessel), so the bot itself is stateless and can be restarted or
//! replaced without losing or repeating messages.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::{AppState, JsonBody};
use crate::store::bot_state;

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 200 || key.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid("key", "1–200 printable characters"));
    }
    Ok(())
}

/// The value is the bot's own free-form JSON: we store, it reads.
pub async fn get(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_key(&key)?;
    let value = bot_state::get(&state.db, &key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no bot state `{key}`")))?;
    Ok(Json(value))
}

/// `POST /v1/bot/once/{key}`: 201 the first time a key is seen, 409 after.
/// The bot's Slack replay guard, shared by every bot replica.
pub async fn once(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_key(&key)?;
    if bot_state::claim_once(&state.db, &key).await? {
        Ok(StatusCode::CREATED)
    } else {
        Err(ApiError::conflict(
            vessel_api::ErrorCode::Replayed,
            format!("`{key}` was seen before"),
        ))
    }
}

pub async fn put(
    State(state): State<AppState>,
    Path(key): Path<String>,
    JsonBody(value): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    check_key(&key)?;
    bot_state::put(&state.db, &key, &value).await?;
    Ok(StatusCode::NO_CONTENT)
}
