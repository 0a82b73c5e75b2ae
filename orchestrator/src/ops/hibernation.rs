//! Hibernate and wake, for the owner or an admin. Hibernating stops the
//! vessel's processes and keeps its container (its disk), name, host key
//! and address; the conductor then gives back its GPUs, cores and memory in
//! one transaction. Waking puts it in line for the host its disk is on, as
//! any request (FIFO, limits, holds), and the conductor starts it there.

use vessel_api::vessels::{VesselView, WakeVessel};
use vessel_api::ErrorCode;

use super::vessels::{record, resolve};
use super::view::view;
use super::{later, Action, Caller, Ctx, OpError};
use crate::domain::VesselState;
use crate::store::{self, audit, jobs, line as line_store, vessels::VesselRow};
use crate::units::Span;

/// Whether the vessel's host joins vessels to a tailnet.
fn on_tailnet(ctx: &Ctx, row: &VesselRow) -> bool {
    ctx.config.hosts.iter().any(|h| {
        Some(h.name.as_str()) == row.host_name.as_deref()
            && matches!(h.network, crate::config::NetworkSpec::Tailscale { .. })
    })
}

fn shown(caller: &Caller, row: VesselRow) -> VesselView {
    let mine = caller.owns(&row.owner_id);
    view(row, &[], mine)
}

/// A running vessel goes to sleep: its processes end; its files, name,
/// host key and address stay. Asking again answers the vessel as it is; a
/// wake still waiting in line stays asleep instead.
pub async fn hibernate(ctx: &Ctx, caller: &Caller, key: &str) -> Result<VesselView, OpError> {
    caller.require(Action::HibernateVessel)?;
    let row = resolve(ctx, caller, key, audit::Action::VesselHibernate).await?;
    let (from, to) = match row.state() {
        VesselState::Hibernating | VesselState::Hibernated => return Ok(shown(caller, row)),
        VesselState::Running => (VesselState::Running, VesselState::Hibernating),
        VesselState::Pending if row.disk_host.is_some() => {
            (VesselState::Pending, VesselState::Hibernated)
        }
        other => {
            return Err(OpError::conflict(
                ErrorCode::NotRunning,
                format!(
                    "vessel `{}` is {other}: only a running vessel hibernates",
                    row.name
                ),
            ))
        }
    };
    if on_tailnet(ctx, &row) {
        return Err(OpError::conflict(
            ErrorCode::NotRunning,
            format!(
                "vessel `{}` runs on a tailnet host, where hibernation is not built yet (its tailnet key is single-use, so it could not wake): keep it, or kill it",
                row.name
            ),
        ));
    }
    let reason = if caller.owns(&row.owner_id) {
        "hibernated by its owner".to_string()
    } else {
        format!("hibernated by admin {}", caller.subject)
    };
    let mut tx = ctx.db.begin().await?;
    let moved = store::vessels::transition(&mut tx, row.id, &[from], to, Some(&reason)).await?;
    let Some(now) = moved else {
        tx.rollback().await?;
        let again = store::vessels::get(&mut *ctx.db.acquire().await?, row.id).await?;
        return again
            .map(|r| shown(caller, r))
            .ok_or_else(|| OpError::NotFound(format!("no vessel `{key}`")));
    };
    if to == VesselState::Hibernating {
        jobs::enqueue(&mut tx, row.id).await?;
    }
    record(&mut tx, caller, audit::Action::VesselHibernate, &row).await?;
    tx.commit().await?;
    if to == VesselState::Hibernating {
        crate::metrics::hibernating(if caller.owns(&row.owner_id) {
            crate::metrics::Hibernation::Owner
        } else {
            crate::metrics::Hibernation::Admin
        });
    }
    Ok(shown(caller, now))
}

/// A wake that has nothing to do: the vessel as it is when it is waking or
/// awake already; a refusal when it is not asleep; None for a sleeper.
fn not_to_wake(caller: &Caller, row: &VesselRow) -> Result<Option<VesselView>, OpError> {
    match row.state() {
        VesselState::Hibernated => Ok(None),
        VesselState::Pending | VesselState::Provisioning if row.disk_host.is_some() => {
            Ok(Some(shown(caller, row.clone())))
        }
        VesselState::Running => Ok(Some(shown(caller, row.clone()))),
        // Not asleep yet: a wake now would be lost, so it is refused.
        VesselState::Hibernating => {
            let why = format!(
                "vessel `{}` is going to sleep now: wake it once it is hibernated (seconds)",
                row.name
            );
            Err(OpError::conflict(ErrorCode::NotLive, why))
        }
        other => Err(OpError::conflict(
            ErrorCode::NotLive,
            format!(
                "vessel `{}` is {other}: only a hibernated vessel wakes",
                row.name
            ),
        )),
    }
}

/// A hibernated vessel joins the line for the host its disk is on. Asking
/// again while it waits or starts answers it as it is.
pub async fn wake(
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
    body: WakeVessel,
) -> Result<VesselView, OpError> {
    caller.require(Action::WakeVessel)?;
    let row = resolve(ctx, caller, key, audit::Action::VesselWake).await?;
    if let Some(answer) = not_to_wake(caller, &row)? {
        return Ok(answer);
    }
    let now = ctx.clock.now();
    let queue = row.queue.as_str();
    let mut tx = ctx.db.begin().await?;
    let why = if body.anywhere {
        format!(
            "waking on {} where its disk is, or on another host (its disk is moved there)",
            row.disk_host.as_deref().unwrap_or("its host")
        )
    } else {
        format!(
            "waking on {}, where its disk is",
            row.disk_host.as_deref().unwrap_or("its host")
        )
    };
    let moved = store::vessels::transition(
        &mut tx,
        row.id,
        &[VesselState::Hibernated],
        VesselState::Pending,
        Some(&why),
    )
    .await?;
    if moved.is_none() {
        tx.rollback().await?;
        let again = store::vessels::get(&mut *ctx.db.acquire().await?, row.id).await?;
        return again
            .map(|r| shown(caller, r))
            .ok_or_else(|| OpError::NotFound(format!("no vessel `{key}`")));
    }
    // A wake waits as long as it takes: its disk is not going anywhere.
    let until = later(
        row.expires_at.max(now),
        Span::from_secs(365 * 86_400),
        "wait",
    )?;
    store::vessels::set_wake_anywhere(&mut tx, row.id, body.anywhere).await?;
    line_store::join(&mut tx, row.id, now, until).await?;
    record(&mut tx, caller, audit::Action::VesselWake, &row).await?;
    let outcome = crate::line::pass(&mut tx, &ctx.config, queue, now, Some(row.id)).await?;
    let placed = outcome.placed.contains(&row.id);
    let place = if placed {
        None
    } else {
        crate::line::place_of(&mut tx, row.id, queue).await?
    };
    let now_row = store::vessels::get(&mut tx, row.id)
        .await?
        .ok_or_else(|| OpError::bug("a vessel vanished inside its own transaction"))?;
    tx.commit().await?;
    let mut shown = shown(caller, now_row);
    shown.line = place;
    Ok(shown)
}
