//! The caller's identity and SSH keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use vessel_api::users::{AddKey, KeyAdded, KeyList, KeyView, Me};
use vessel_api::ErrorCode;

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
        UserError::NameTaken(_) => ApiError::conflict(ErrorCode::UnixNameTaken, e.to_string()),
        UserError::Db(e) => e.into(),
    })
}

fn key_views(keys: Vec<users::StoredKey>) -> Vec<KeyView> {
    keys.into_iter()
        .map(|k| KeyView {
            fingerprint: k.fingerprint,
            public_key: k.public_key,
            created_at: k.created_at,
        })
        .collect()
}

pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let user = current_user(&state, &caller).await?;
    let keys = key_views(users::keys(&state.db, &user.id).await?);
    Ok(Json(Me {
        id: user.id,
        unix_name: user.unix_name,
        uid: user.uid,
        keys,
    }))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyList>, ApiError> {
    let user = current_user(&state, &caller).await?;
    let keys = key_views(users::keys(&state.db, &user.id).await?);
    Ok(Json(KeyList { keys }))
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<AddKey>,
) -> Result<(StatusCode, Json<KeyAdded>), ApiError> {
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
        Json(KeyAdded {
            fingerprint: key.fingerprint,
            public_key: key.openssh,
            added,
        }),
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
