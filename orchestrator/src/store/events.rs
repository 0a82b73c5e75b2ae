//! The outbox: events written with the state change they announce, read by
//! the bot with a cursor (`id > after`).

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Channel woken on every new event, so a streaming reader need not poll.
pub const CHANNEL: &str = "vessel_events";

pub async fn emit(
    conn: &mut PgConnection,
    vessel_id: Option<Uuid>,
    kind: &str,
    payload: serde_json::Value,
) -> Result<i64, sqlx::Error> {
    let id = sqlx::query_scalar!(
        "INSERT INTO events (vessel_id, kind, payload) VALUES ($1, $2, $3) RETURNING id",
        vessel_id,
        kind,
        payload
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("SELECT pg_notify($1, $2::text)", CHANNEL, id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

#[derive(Debug, Serialize)]
pub struct Event {
    pub id: i64,
    pub vessel_id: Option<Uuid>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn after(db: &PgPool, after: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as!(
        Event,
        "SELECT id, vessel_id, kind, payload, created_at FROM events
         WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// Events older than `secs`: the bot has long read them. The cut-off is on
/// the database's clock, which stamped `created_at`.
pub async fn prune(db: &PgPool, secs: f64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "DELETE FROM events WHERE created_at < now() - make_interval(secs => $1)",
        secs
    )
    .execute(db)
    .await?
    .rows_affected())
}
