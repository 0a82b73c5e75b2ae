//! Admin actions on hosts: drain (no new vessels; running ones stay) and
//! undrain, each audited and announced.

use serde_json::json;
use vessel_api::events::{EventKind, EventPayload, HostEvent};
use vessel_api::fleet::{HostChange, HostState};

use super::{Action, Caller, Ctx, OpError};
use crate::store::{audit, events, hosts};

/// Sets a host's state: `Draining` or `Active`.
pub async fn set_state(
    ctx: &Ctx,
    caller: &Caller,
    name: &str,
    to: HostState,
) -> Result<HostChange, OpError> {
    let (action, audited, kind) = match to {
        HostState::Draining => (
            Action::DrainHost,
            audit::Action::HostDrain,
            EventKind::HostDrain,
        ),
        HostState::Active => (
            Action::UndrainHost,
            audit::Action::HostUndrain,
            EventKind::HostUndrain,
        ),
    };
    caller.require(action)?;
    let mut tx = ctx.db.begin().await?;
    let previous = hosts::set_state(&mut tx, name, to.as_str())
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no host `{name}`")))?;
    audit::record(
        &mut tx,
        &caller.subject,
        audited,
        Some(name),
        "ok",
        json!({ "from": previous }),
    )
    .await?;
    let payload = EventPayload::Host(HostEvent {
        host: name.to_string(),
        by: Some(caller.subject.clone()),
        reason: None,
        vessels: None,
        to: None,
        message: None,
    });
    events::emit(&mut tx, None, &kind, &payload).await?;
    tx.commit().await?;
    let was = if previous == HostState::Draining.as_str() {
        HostState::Draining
    } else {
        HostState::Active
    };
    Ok(HostChange {
        host: name.to_string(),
        state: to,
        was,
    })
}
