//! The bot's key-value state (its event cursor, which Slack message shows
//! which vessel), kept here so the bot itself is stateless.

use sqlx::PgPool;

pub async fn get(db: &PgPool, key: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar!("SELECT value FROM bot_state WHERE key = $1", key)
        .fetch_optional(db)
        .await
}

pub async fn put(db: &PgPool, key: &str, value: &serde_json::Value) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO bot_state (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
        key,
        value
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The bot's Slack message reference of each vessel that ended more than
/// `secs` ago: nobody updates that message any more.
pub async fn prune_message_refs(db: &PgPool, secs: f64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "DELETE FROM bot_state b USING vessels v
             WHERE b.key = 'slack-message:' || v.id::text
               AND v.ended_at < now() - make_interval(secs => $1)",
        secs
    )
    .execute(db)
    .await?
    .rows_affected())
}
