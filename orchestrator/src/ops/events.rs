//! The outbox, read with a cursor: events after an id, waiting up to a
//! number of seconds for one (long poll). A reader that was away resumes
//! from its last id and loses nothing.

use std::time::Duration;

use sqlx::postgres::PgListener;
use vessel_api::events::EventBatch;

use super::{Action, Caller, Ctx, OpError};
use crate::store::events;

/// `after < 0` asks where the stream ends now: a new reader that wants no
/// history.
pub async fn poll(
    ctx: &Ctx,
    caller: &Caller,
    after: i64,
    wait: Duration,
    limit: i64,
) -> Result<EventBatch, OpError> {
    caller.require(Action::ReadEvents)?;
    if after < 0 {
        let next = events::last_id(&ctx.db).await?;
        return Ok(EventBatch {
            events: Vec::new(),
            next,
        });
    }
    let mut found = events::after(&ctx.db, after, limit).await?;
    if found.is_empty() && !wait.is_zero() {
        // Listen first, then look again, so an event committed in between
        // is not missed.
        let mut listener = PgListener::connect_with(&ctx.db).await?;
        listener.listen(events::CHANNEL).await?;
        found = events::after(&ctx.db, after, limit).await?;
        if found.is_empty() {
            let _ = tokio::time::timeout(wait, listener.recv()).await;
            found = events::after(&ctx.db, after, limit).await?;
        }
    }
    let next = found.last().map(|e| e.id).unwrap_or(after);
    Ok(EventBatch {
        events: found,
        next,
    })
}
