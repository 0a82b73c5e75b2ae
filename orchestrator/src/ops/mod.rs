//! The operations every front door shares: the HTTP API's handlers, the
//! portal's pages (and through the API, the bot and the CLI) call these
//! plain async functions with the caller, the context and typed inputs, and
//! turn the typed answer into their own form (JSON, HTML). Each operation
//! checks its `Action` against the caller first, so what one door refuses,
//! every door refuses with the same words.

pub mod action;
pub mod audit;
pub mod bot_state;
pub mod caller;
pub mod create;
pub mod error;
pub mod events;
pub mod fleet;
pub mod hibernation;
pub mod hosts;
pub mod line;
pub mod links;
pub mod people;
pub mod plan;
pub mod vessels;
pub mod view;

use std::sync::Arc;

use sqlx::PgPool;

pub use action::Action;
pub use caller::Caller;
pub use error::OpError;

use crate::clock::Clock;
use crate::config::Config;

/// What every operation works with: the store, the configuration and the
/// clock. Cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
}

/// A later time than `now` by `span`, or a 422 on `field` when that is past
/// what dates can hold.
pub(crate) fn later(
    now: chrono::DateTime<chrono::Utc>,
    span: crate::units::Span,
    field: &str,
) -> Result<chrono::DateTime<chrono::Utc>, OpError> {
    chrono::Duration::from_std(span.duration())
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| OpError::invalid(field, format!("{span} is too long")))
}
