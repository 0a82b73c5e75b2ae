//! Reading the audit log (admins): who did what to which target, and what
//! was refused.

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::AppState;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    target: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub source: String,
    pub detail: serde_json::Value,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let entries = sqlx::query_as!(
        AuditEntry,
        r#"SELECT id, at, actor, action, target, outcome, source, detail FROM audit_log
           WHERE ($1::text IS NULL OR actor = $1)
             AND ($2::text IS NULL OR target = $2
                  OR target IN (SELECT id::text FROM vessels WHERE name = $2))
           ORDER BY id DESC LIMIT $3"#,
        q.actor,
        q.target,
        limit
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(serde_json::json!({ "entries": entries })))
}
