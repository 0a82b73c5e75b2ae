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
