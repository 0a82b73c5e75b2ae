//! The audit log: who did what to which target, written in the transaction
//! of the change itself.

use sqlx::PgConnection;

pub async fn record(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    target: Option<&str>,
    outcome: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5)",
        actor,
        action,
        target,
        outcome,
        detail
    )
    .execute(conn)
    .await?;
    Ok(())
}
