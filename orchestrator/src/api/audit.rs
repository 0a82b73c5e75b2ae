//! Reading the audit log (admins): who did what to which target, and what
//! was refused.

use axum::extract::{Query, State};
use axum::Json;
use vessel_api::audit::{AuditList, AuditQuery};

use super::error::ApiError;
use super::AppState;
use crate::store::audit;

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let entries = audit::list(&state.db, q.actor.as_deref(), q.target.as_deref(), limit).await?;
    Ok(Json(AuditList { entries }))
}
