//! Admins set a researcher's unix identity (name and uid) when the derived
//! one is not right — before the researcher's first vessel, or between them.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, JsonBody};
use crate::domain::UnixName;
use crate::store::{self, audit};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetUser {
    unix_name: String,
    uid: Option<i32>,
}

pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
    JsonBody(body): JsonBody<SetUser>,
) -> Result<Json<Value>, ApiError> {
    let name = UnixName::parse(&body.unix_name)
        .map_err(|e| ApiError::invalid("unix_name", e.to_string()))?;
    if matches!(body.uid, Some(uid) if !(1000..=2_000_000_000).contains(&uid)) {
        return Err(ApiError::invalid("uid", "between 1000 and 2000000000"));
    }
    let mut tx = state.db.begin().await?;
    let live: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM vessels WHERE owner_id = $1
           AND state IN ('requested', 'pending', 'provisioning', 'running', 'stopping')"#,
        subject
    )
    .fetch_one(&mut *tx)
    .await?;
    if live > 0 {
        return Err(ApiError::Conflict {
            error: "has_live_vessels",
            message: format!(
                "`{subject}` has {live} live vessel(s) running as the old identity; change it when they have ended"
            ),
        });
    }
    let result = sqlx::query!(
        "INSERT INTO users (id, unix_name, uid) VALUES ($1, $2, coalesce($3, nextval('user_uids')::int))
         ON CONFLICT (id) DO UPDATE SET unix_name = excluded.unix_name,
           uid = coalesce($3, users.uid)
         RETURNING unix_name, uid",
        subject,
        name.as_str(),
        body.uid
    )
    .fetch_one(&mut *tx)
    .await;
    let row = match result {
        Ok(r) => r,
        Err(e) if store::is_unique_violation(&e) => {
            return Err(ApiError::Conflict {
                error: "identity_taken",
                message: format!(
                    "the unix name `{}` or that uid belongs to someone else",
                    name.as_str()
                ),
            })
        }
        Err(e) => return Err(e.into()),
    };
    audit::record(
        &mut tx,
        &caller.subject,
        "user.set",
        Some(&subject),
        "ok",
        json!({ "unix_name": row.unix_name, "uid": row.uid }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "id": subject, "unix_name": row.unix_name, "uid": row.uid }),
    ))
}
