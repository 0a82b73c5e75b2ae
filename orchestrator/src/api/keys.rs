//! The caller's identity and SSH keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, JsonBody};
use crate::domain::SshPublicKey;
use crate::store::users::{self, User, UserError};

pub(crate) async fn current_user(state: &AppState, caller: &Caller) -> Result<User, ApiError> {
    users::ensure(
        &state.db,
        &caller.subject,
        caller.unix_name.as_ref(),
        caller.uid,
    )
    .await
    .map_err(|e| match e {
        UserError::NameTaken(_) => ApiError::Conflict {
            error: "unix_name_taken",
            message: e.to_string(),
        },
        UserError::Db(e) => e.into(),
    })
}

pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let user = current_user(&state, &caller).await?;
    let keys = users::keys(&state.db, &user.id).await?;
    Ok(Json(json!({
        "id": user.id,
        "unix_name": user.unix_name,
        "uid": user.uid,
        "keys": keys,
    })))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let user = current_user(&state, &caller).await?;
    Ok(Json(
        json!({ "keys": users::keys(&state.db, &user.id).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    public_key: String,
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<AddKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = SshPublicKey::parse(&body.public_key)
        .map_err(|e| ApiError::invalid("public_key", e.to_string()))?;
    let user = current_user(&state, &caller).await?;
    let added = users::add_key(&state.db, &user, &key).await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "fingerprint": key.fingerprint, "public_key": key.openssh, "added": added })),
    ))
}

pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(fingerprint): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = current_user(&state, &caller).await?;
    if users::remove_key(&state.db, &user, &fingerprint).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "you have no key with fingerprint {fingerprint}"
        )))
    }
}
