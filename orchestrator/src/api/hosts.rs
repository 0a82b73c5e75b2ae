//! Admin actions on hosts: drain (no new vessels; running ones stay) and
//! undrain.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;
use vessel_api::events::{EventKind, EventPayload, HostEvent};
use vessel_api::fleet::{HostChange, HostState};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::store::{audit, events, hosts};

async fn set_state(
    state: &AppState,
    caller: &Caller,
    name: &str,
    to: HostState,
) -> Result<Json<HostChange>, ApiError> {
    let mut tx = state.db.begin().await?;
    let previous = hosts::set_state(&mut tx, name, to.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no host `{name}`")))?;
    let (action, kind) = match to {
        HostState::Draining => ("host.drain", EventKind::HostDrain),
        HostState::Active => ("host.undrain", EventKind::HostUndrain),
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
    let payload = EventPayload::Host(HostEvent {
        host: name.to_string(),
        by: Some(caller.subject.clone()),
        reason: None,
        vessels: None,
        to: None,
        message: None,
    });
    events::emit(&mut tx, None, &kind, &payload).await?;
    tx.commit().await?;
    let was = if previous == "draining" {
        HostState::Draining
    } else {
        HostState::Active
    };
    Ok(Json(HostChange {
        host: name.to_string(),
        state: to,
        was,
    }))
}

pub async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<HostChange>, ApiError> {
    set_state(&state, &caller, &name, HostState::Draining).await
}

pub async fn undrain(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<HostChange>, ApiError> {
    set_state(&state, &caller, &name, HostState::Active).await
}
