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
    let filter = audit::Filter {
        actor: q.actor.as_deref(),
        target: q.target.as_deref(),
        action: q.action.as_deref(),
        outcome: q.outcome.as_deref(),
    };
    let entries = audit::list(&state.db, filter, limit).await?;
    Ok(Json(AuditList { entries }))
}
