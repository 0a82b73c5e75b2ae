//! The outbox, read with a cursor: `GET /v1/events?after=ID&wait=25` returns
//! events after ID, waiting up to `wait` seconds for one (long poll). A reader
//! that was away resumes from its last id and loses nothing.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use sqlx::postgres::PgListener;
use vessel_api::events::EventBatch;

use super::error::ApiError;
use super::AppState;
use crate::store::events;

#[derive(Debug, Deserialize)]
pub struct Poll {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    wait: u64,
    limit: Option<i64>,
}

pub async fn poll(
    State(state): State<AppState>,
    Query(q): Query<Poll>,
) -> Result<Json<EventBatch>, ApiError> {
    if q.after < 0 {
        // Where the stream ends now: a new reader that wants no history.
        let next = events::last_id(&state.db).await?;
        return Ok(Json(EventBatch {
            events: Vec::new(),
            next,
        }));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let wait = Duration::from_secs(q.wait.min(55));
    let mut found = events::after(&state.db, q.after, limit).await?;
    if found.is_empty() && !wait.is_zero() {
        // Listen first, then look again, so an event committed in between
        // is not missed.
        let mut listener = PgListener::connect_with(&state.db).await?;
        listener.listen(events::CHANNEL).await?;
        found = events::after(&state.db, q.after, limit).await?;
        if found.is_empty() {
            let _ = tokio::time::timeout(wait, listener.recv()).await;
            found = events::after(&state.db, q.after, limit).await?;
        }
    }
    let next = found.last().map(|e| e.id).unwrap_or(q.after);
    Ok(Json(EventBatch {
        events: found,
        next,
    }))
}
