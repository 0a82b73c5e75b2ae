//! A small key-value store for the bot (its event cursor, the Slack message
//! of each vessel, its replay guard), so the bot itself is stateless and
//! can be restarted or replaced without losing or repeating messages.

use serde_json::Value;

use super::{Action, Caller, Ctx, OpError};
use crate::store::bot_state;

fn check_key(key: &str) -> Result<(), OpError> {
    if key.is_empty() || key.len() > 200 || key.chars().any(|c| c.is_control()) {
        return Err(OpError::invalid("key", "1–200 printable characters"));
    }
    Ok(())
}

/// The value is the bot's own free-form JSON: we store, it reads.
pub async fn get(ctx: &Ctx, caller: &Caller, key: &str) -> Result<Value, OpError> {
    caller.require(Action::BotState)?;
    check_key(key)?;
    bot_state::get(&ctx.db, key)
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no bot state `{key}`")))
}

pub async fn put(ctx: &Ctx, caller: &Caller, key: &str, value: &Value) -> Result<(), OpError> {
    caller.require(Action::BotState)?;
    check_key(key)?;
    bot_state::put(&ctx.db, key, value).await?;
    Ok(())
}

/// `Ok` the first time a key is seen, `replayed` after: the bot's Slack
/// replay guard, shared by every bot replica.
pub async fn once(ctx: &Ctx, caller: &Caller, key: &str) -> Result<(), OpError> {
    caller.require(Action::BotState)?;
    check_key(key)?;
    if bot_state::claim_once(&ctx.db, key).await? {
        Ok(())
    } else {
        Err(OpError::conflict(
            vessel_api::ErrorCode::Replayed,
            format!("`{key}` was seen before"),
        ))
    }
}
