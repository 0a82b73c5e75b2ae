//! The audit log: who did what to which target, from where, written in the
//! transaction of the change itself.

use sqlx::PgConnection;

tokio::task_local! {
    /// Where the current request came from, set by the API's middleware;
    /// outside a request (the conductor, other jobs) it is `system`.
    pub static SOURCE: String;
}

fn source() -> String {
    SOURCE
        .try_with(|s| s.clone())
        .unwrap_or_else(|_| "system".into())
}

pub async fn record(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    target: Option<&str>,
    outcome: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (actor, action, target, outcome, detail, source)
         VALUES ($1, $2, $3, $4, $5, $6)",
        actor,
        action,
        target,
        outcome,
        detail,
        source()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Newest first, filtered by actor and by target (an id, or a vessel's name).
pub async fn list(
    db: &sqlx::PgPool,
    actor: Option<&str>,
    target: Option<&str>,
    limit: i64,
) -> Result<Vec<vessel_api::audit::AuditEntry>, sqlx::Error> {
    sqlx::query_as!(
        vessel_api::audit::AuditEntry,
        r#"SELECT id, at, actor, action, target, outcome, source, detail FROM audit_log
           WHERE ($1::text IS NULL OR actor = $1)
             AND ($2::text IS NULL OR target = $2
                  OR target IN (SELECT id::text FROM vessels WHERE name = $2))
           ORDER BY id DESC LIMIT $3"#,
        actor,
        target,
        limit
    )
    .fetch_all(db)
    .await
}
