//! `bot_state`: the bot's key-value rows, as far as the orchestrator itself
//! tends them (the API reads and writes them for the bot).

use sqlx::PgPool;

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
