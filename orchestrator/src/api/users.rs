//! Admins set a researcher's unix identity (name and uid) when the derived
//! one is not right — before the researcher's first vessel, or between them.
//! The old name and uid stay the researcher's (the database refuses them to
//! anyone else), so their files never pass to a newcomer.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;
use vessel_api::users::{SetUser, UserView};
use vessel_api::ErrorCode;

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, JsonBody};
use crate::store::{self, audit, users};

pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
    JsonBody(body): JsonBody<SetUser>,
) -> Result<Json<UserView>, ApiError> {
    if matches!(body.uid, Some(uid) if !(1000..=2_000_000_000).contains(&uid)) {
        return Err(ApiError::invalid("uid", "between 1000 and 2000000000"));
    }
    let mut tx = state.db.begin().await?;
    let live = users::live_vessels(&mut tx, &subject).await?;
    if live > 0 {
        return Err(ApiError::conflict(
            ErrorCode::HasLiveVessels,
            format!(
                "`{subject}` has {live} live vessel(s) running as the old identity; change it when they have ended"
            ),
        ));
    }
    let user = match users::set_identity(&mut tx, &subject, body.unix_name.as_str(), body.uid).await
    {
        Ok(u) => u,
        Err(e) if store::is_unique_violation(&e) => {
            return Err(ApiError::conflict(
                ErrorCode::IdentityTaken,
                format!(
                    "the unix name `{}` or that uid belongs, or once belonged, to someone else: \
                     a name or uid is never given to a second person, whose files it would own",
                    body.unix_name
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    audit::record(
        &mut tx,
        &caller.subject,
        "user.set",
        Some(&subject),
        "ok",
        json!({ "unix_name": user.unix_name, "uid": user.uid }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(UserView {
        id: user.id,
        unix_name: user.unix_name,
        uid: user.uid,
    }))
}
