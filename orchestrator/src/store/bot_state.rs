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
