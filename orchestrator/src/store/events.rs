//! The outbox: events written with the state change they announce, read by
//! the bot with a cursor (`id > after`). Kinds and payloads are the
//! contract's types; the table stores them as text and JSON.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use vessel_api::events::{Event, EventKind, EventPayload};

/// Channel woken on every new event, so a streaming reader need not poll.
pub const CHANNEL: &str = "vessel_events";

pub async fn emit(
    conn: &mut PgConnection,
    vessel_id: Option<Uuid>,
    kind: &EventKind,
    payload: &EventPayload,
) -> Result<i64, sqlx::Error> {
    let payload = serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let id = sqlx::query_scalar!(
        "INSERT INTO events (vessel_id, kind, payload) VALUES ($1, $2, $3) RETURNING id",
        vessel_id,
        kind.to_string(),
        payload
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("SELECT pg_notify($1, $2::text)", CHANNEL, id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Many events in one statement (a line pass tells every request whose
/// place changed), with one wake-up for readers.
pub async fn emit_many(
    conn: &mut PgConnection,
    events: &[(Uuid, EventKind, EventPayload)],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for (id, kind, payload) in events {
        ids.push(*id);
        kinds.push(kind.to_string());
        payloads.push(serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
    }
    let last = sqlx::query_scalar!(
        r#"WITH added AS (
               INSERT INTO events (vessel_id, kind, payload)
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[])
               RETURNING id)
           SELECT max(id) AS "id!" FROM added"#,
        &ids,
        &kinds,
        &payloads
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("SELECT pg_notify($1, $2::text)", CHANNEL, last.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn after(db: &PgPool, after: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, vessel_id, kind, payload, created_at FROM events
         WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Event {
            id: r.id,
            vessel_id: r.vessel_id,
            kind: EventKind::parse(&r.kind),
            // Rows written before payloads were typed read as `Other`.
            payload: serde_json::from_value(r.payload.clone())
                .unwrap_or(EventPayload::Other(r.payload)),
            created_at: r.created_at,
        })
        .collect())
}

/// Where the stream ends now: a new reader that wants no history starts here.
pub async fn last_id(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!("SELECT coalesce(max(id), 0) AS \"n!\" FROM events")
        .fetch_one(db)
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
