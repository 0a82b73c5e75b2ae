//! sqlx queries grouped by table. Every state change of a vessel goes through
//! `vessels::transition`, which writes the announcing event in the same
//! transaction (the outbox).

pub mod audit;
pub mod bot_state;
pub mod disk;
pub mod events;
pub mod gauges;
pub mod gpu_incidents;
pub mod hosts;
pub mod identities;
pub mod idle;
pub mod jobs;
pub mod line;
pub mod tailnet_devices;
pub mod ticks;
pub mod users;
pub mod vessels;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
}

/// Postgres error codes the code reacts to.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

pub fn is_check_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23514"))
}
