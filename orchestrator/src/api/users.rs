//! Admins set a researcher's unix identity (name and uid) when the derived
//! one is not right — before the researcher's first vessel, or between them.
//! The old name and uid stay the researcher's (the database refuses them to
//! anyone else), so their files never pass to a newcomer.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;
use vessel_api::users::{QueueUse, SetUser, UserList, UserSummary, UserView};
use vessel_api::ErrorCode;

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, JsonBody};
use crate::store::{self, audit, line, users};

/// Everyone, with what they hold per queue and the limits on them: the
/// queue's own, or an admin's override.
pub async fn list(State(state): State<AppState>) -> Result<Json<UserList>, ApiError> {
    let people = users::all(&state.db).await?;
    let usage = line::all_usage(&state.db).await?;
    let overrides = line::all_overrides(&state.db).await?;
    let summaries = people
        .into_iter()
        .map(|u| {
            let mut queues: std::collections::BTreeSet<&str> = usage
                .iter()
                .filter(|(owner, _, _)| *owner == u.id)
                .map(|(_, q, _)| q.as_str())
                .collect();
            queues.extend(
                overrides
                    .iter()
                    .filter(|(_, o)| o.user_id == u.id)
                    .map(|(q, _)| q.as_str()),
            );
            let queues = queues
                .into_iter()
                .map(|q| {
                    let held = usage
                        .iter()
                        .find(|(owner, queue, _)| *owner == u.id && queue == q)
                        .map(|(_, _, use_)| *use_)
                        .unwrap_or_default();
                    let o = overrides
                        .iter()
                        .find(|(queue, o)| o.user_id == u.id && queue == q)
                        .map(|(_, o)| o);
                    let limit = state
                        .config
                        .queue(q)
                        .map(|qc| crate::line::limit_with(qc, o))
                        .unwrap_or_default();
                    QueueUse {
                        queue: q.to_string(),
                        gpus: held.gpus.max(0) as u32,
                        vessels: held.vessels.max(0) as u32,
                        max_gpus: limit.max_gpus.map(|n| n.max(0) as u32),
                        max_vessels: limit.max_vessels.map(|n| n.max(0) as u32),
                        overridden: o.is_some(),
                    }
                })
                .collect();
            UserSummary {
                id: u.id,
                unix_name: u.unix_name,
                uid: u.uid,
                queues,
            }
        })
        .collect();
    Ok(Json(UserList { users: summaries }))
}

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
