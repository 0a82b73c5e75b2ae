//! Admin actions on hosts: drain (no new vessels; running ones stay) and
//! undrain.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::store::{audit, events};

async fn set_state(
    state: &AppState,
    caller: &Caller,
    name: &str,
    to: &str,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.db.begin().await?;
    let previous = sqlx::query_scalar!("SELECT state FROM hosts WHERE name = $1 FOR UPDATE", name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no host `{name}`")))?;
    sqlx::query!(
        "UPDATE hosts SET state = $2, updated_at = now() WHERE name = $1",
        name,
        to
    )
    .execute(&mut *tx)
    .await?;
    let action = if to == "draining" {
        "host.drain"
    } else {
        "host.undrain"
    };
    audit::record(
        &mut tx,
        &caller.subject,
        action,
        Some(name),
        "ok",
        json!({ "from": previous }),
    )
    .await?;
    events::emit(
        &mut tx,
        None,
        action,
        json!({ "host": name, "state": to, "by": caller.subject }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "host": name, "state": to, "was": previous })))
}

pub async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_state(&state, &caller, &name, "draining").await
}

pub async fn undrain(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_state(&state, &caller, &name, "active").await
}
