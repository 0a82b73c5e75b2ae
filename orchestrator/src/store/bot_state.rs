//! The bot's key-value state (its event cursor, which Slack message shows
//! which vessel), kept here so the bot itself is stateless.

use sqlx::PgPool;

pub async fn get(db: &PgPool, key: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar!("SELECT value FROM bot_state WHERE key = $1", key)
        .fetch_optional(db)
        .await
}

/// Records `key` once: true the first time, false when it was already
/// there. One statement, so two bot replicas racing on it cannot both win.
pub async fn claim_once(db: &PgPool, key: &str) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        "INSERT INTO bot_state (key, value) VALUES ($1, 'true'::jsonb)
         ON CONFLICT (key) DO NOTHING RETURNING key",
        key
    )
    .fetch_optional(db)
    .await?;
    Ok(inserted.is_some())
}

/// Forgets one-time keys under `prefix` older than `age`: a Slack signature
/// is only replayable inside its window.
pub async fn prune_once(
    db: &PgPool,
    prefix: &str,
    age: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM bot_state WHERE starts_with(key, $1)
           AND updated_at < now() - make_interval(secs => $2)",
        prefix,
        age.as_secs_f64()
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
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
             WHERE b.key IN ('slack-message:' || v.id::text, 'line:' || v.id::text)
               AND v.ended_at < now() - make_interval(secs => $1)",
        secs
    )
    .execute(db)
    .await?
    .rows_affected())
}
