//! A caller's vessels: list, show, kill (or cancel while waiting), extend,
//! keep. A vessel is found by id or by its owner's name for it; acting on
//! someone else's needs `Action::OthersVessels`, and a refusal is audited.

use uuid::Uuid;
use vessel_api::events::EventKind;
use vessel_api::vessels::{ListQuery, VesselList, VesselView};
use vessel_api::ErrorCode;

use super::people::current_user;
use super::view::{add_idle, places_of, view};
use super::{later, Action, Caller, Ctx, OpError};
use crate::domain::VesselState;
use crate::store::{self, audit, events, jobs, users, vessels::VesselRow};
use crate::units::Span;

pub async fn list(ctx: &Ctx, caller: &Caller, q: ListQuery) -> Result<VesselList, OpError> {
    caller.require(Action::ListVessels)?;
    let owner = if q.all || q.owner.is_some() {
        // Not `fleet:read`: every researcher has that, and a vessel lists
        // its owner's access. The fleet view is the everyone-view.
        if !caller.may(Action::OthersVessels) {
            return Err(OpError::Forbidden(
                "listing others' vessels needs `vessels:manage:any` (admins); `/v1/fleet` shows the fleet".into(),
            ));
        }
        q.owner
    } else {
        Some(current_user(ctx, caller).await?.id)
    };
    let rows = store::vessels::list(&ctx.db, owner.as_deref(), q.ended).await?;
    let places = places_of(ctx, &rows).await?;
    let mut vessels: Vec<VesselView> = rows
        .into_iter()
        .map(|r| {
            let mine = caller.owns(&r.owner_id);
            let place = places.get(&r.id).cloned();
            let mut v = view(r, &[], mine);
            v.line = place;
            v
        })
        .collect();
    add_idle(ctx, &mut vessels).await?;
    Ok(VesselList { vessels })
}

/// Finds a vessel by id or by the caller's name for it, and checks the
/// caller may act on it: their own, or any with `OthersVessels`. A refusal
/// is audited as `action`.
pub(super) async fn resolve(
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
    action: audit::Action,
) -> Result<VesselRow, OpError> {
    let row = find(ctx, caller, key)
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no vessel `{key}`")))?;
    if !caller.owns(&row.owner_id) && !caller.may(Action::OthersVessels) {
        let mut conn = ctx.db.acquire().await?;
        audit::record_denied(
            &mut conn,
            &caller.subject,
            action,
            &row.id.to_string(),
            serde_json::json!({ "reason": "not the owner", "owner": row.owner_id }),
        )
        .await?;
        return Err(OpError::Forbidden(format!("vessel `{key}` is not yours")));
    }
    Ok(row)
}

/// By id; else the caller's own by name; else (admins) anyone's live one by
/// name, when the name is unambiguous.
async fn find(ctx: &Ctx, caller: &Caller, key: &str) -> Result<Option<VesselRow>, OpError> {
    if let Ok(id) = Uuid::parse_str(key) {
        return Ok(store::vessels::get(&mut *ctx.db.acquire().await?, id).await?);
    }
    let user = current_user(ctx, caller).await?;
    if let Some(row) = store::vessels::by_owner_and_name(&ctx.db, &user.id, key).await? {
        return Ok(Some(row));
    }
    if !caller.may(Action::OthersVessels) {
        return Ok(None);
    }
    let live: Vec<VesselRow> = store::vessels::list(&ctx.db, None, false)
        .await?
        .into_iter()
        .filter(|v| v.name == key)
        .collect();
    if live.len() > 1 {
        let owners: Vec<&str> = live.iter().map(|v| v.owner_unix.as_str()).collect();
        return Err(OpError::conflict(
            ErrorCode::Ambiguous,
            format!(
                "several live vessels are named `{key}` (owners: {}); use the id",
                owners.join(", ")
            ),
        ));
    }
    Ok(live.into_iter().next())
}

pub async fn show(ctx: &Ctx, caller: &Caller, key: &str) -> Result<VesselView, OpError> {
    caller.require(Action::ShowVessel)?;
    let row = resolve(ctx, caller, key, audit::Action::VesselShow).await?;
    let fingerprints: Vec<String> = users::keys(&ctx.db, &row.owner_id)
        .await?
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    let mine = caller.owns(&row.owner_id);
    let place = if row.state() == VesselState::Pending {
        crate::line::place_of(&mut *ctx.db.acquire().await?, row.id, row.queue.as_str()).await?
    } else {
        None
    };
    let mut view = [view(row, &fingerprints, mine)];
    view[0].line = place;
    add_idle(ctx, &mut view).await?;
    let [view] = view;
    Ok(view)
}

/// Kills a vessel, or cancels a request still waiting (it holds nothing).
pub async fn kill(ctx: &Ctx, caller: &Caller, key: &str) -> Result<VesselView, OpError> {
    caller.require(Action::KillVessel)?;
    let row = resolve(ctx, caller, key, audit::Action::VesselKill).await?;
    let by_owner = caller.owns(&row.owner_id);
    let reason = if by_owner {
        "killed by its owner".to_string()
    } else {
        format!("killed by admin {}", caller.subject)
    };
    // If it was placed meanwhile, it is stopped like any vessel. A waking
    // vessel has a disk to remove: it is stopped like any vessel too.
    if row.state() == VesselState::Pending && row.disk_host.is_none() {
        if let Some(now) = cancel(ctx, caller, &row, &reason).await? {
            return Ok(view(now, &[], caller.owns(&row.owner_id)));
        }
    }
    let mut tx = ctx.db.begin().await?;
    let moved = store::vessels::transition(
        &mut tx,
        row.id,
        &[
            VesselState::Requested,
            VesselState::Provisioning,
            VesselState::Running,
            VesselState::Pending,
            VesselState::Hibernating,
            VesselState::Hibernated,
        ],
        VesselState::Stopping,
        Some(&reason),
    )
    .await?;
    let moved_now = moved.is_some();
    let current = match moved {
        Some(now) => {
            jobs::enqueue(&mut tx, row.id).await?;
            record(&mut tx, caller, audit::Action::VesselKill, &row).await?;
            now
        }
        None if row.state() == VesselState::Stopping => row,
        None => {
            return Err(OpError::conflict(
                ErrorCode::NotLive,
                format!("vessel `{}` is already {}", row.name, row.state),
            ))
        }
    };
    tx.commit().await?;
    if moved_now {
        crate::metrics::buried(if by_owner {
            crate::metrics::Burial::Owner
        } else {
            crate::metrics::Burial::Admin
        });
    }
    let mine = caller.owns(&current.owner_id);
    Ok(view(current, &[], mine))
}

/// A waiting request leaves the line: buried with the reason, nothing to
/// stop. `None` when it was placed in the meantime.
async fn cancel(
    ctx: &Ctx,
    caller: &Caller,
    row: &VesselRow,
    reason: &str,
) -> Result<Option<VesselRow>, OpError> {
    let mut tx = ctx.db.begin().await?;
    let why = format!("cancelled while waiting: {reason}");
    let left = store::vessels::transition(
        &mut tx,
        row.id,
        &[VesselState::Pending],
        VesselState::Buried,
        Some(&why),
    )
    .await?;
    if left.is_some() {
        record(&mut tx, caller, audit::Action::VesselCancel, row).await?;
        tx.commit().await?;
        crate::metrics::buried(crate::metrics::Burial::Cancelled);
    }
    Ok(left)
}

/// The audit row of an act on a vessel, by the caller.
pub(super) async fn record(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    action: audit::Action,
    row: &VesselRow,
) -> Result<(), OpError> {
    audit::record(
        tx,
        &caller.subject,
        action,
        Some(&row.id.to_string()),
        "ok",
        serde_json::json!({ "name": row.name }),
    )
    .await?;
    Ok(())
}

pub async fn extend(
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
    by: Span,
) -> Result<VesselView, OpError> {
    caller.require(Action::ExtendVessel)?;
    let row = resolve(ctx, caller, key, audit::Action::VesselExtend).await?;
    if !row.state().is_live() || row.state() == VesselState::Stopping {
        return Err(OpError::conflict(
            ErrorCode::NotLive,
            format!("vessel `{}` is {}", row.name, row.state),
        ));
    }
    let max = ctx
        .config
        .queue(row.queue.as_str())
        .map(|q| q.max_lifetime)
        .unwrap_or(by);
    let now = ctx.clock.now();
    let wanted = later(row.expires_at.max(now), by, "by")?;
    // The queue's limit is on the whole life, from when it started (time
    // spent waiting in line does not count): extending again and again
    // cannot make a vessel permanent.
    let cap = later(row.started_at.unwrap_or(row.created_at), max, "by")?;
    if wanted > cap {
        return Err(OpError::invalid(
            "by",
            format!(
                "a vessel in queue `{}` lives at most {max} in all: this one can run until {} at the latest",
                row.queue,
                cap.format("%a %d %b %H:%M UTC")
            ),
        ));
    }
    let mut tx = ctx.db.begin().await?;
    store::vessels::set_expiry(&mut tx, row.id, wanted).await?;
    audit::record(
        &mut tx,
        &caller.subject,
        audit::Action::VesselExtend,
        Some(&row.id.to_string()),
        "ok",
        serde_json::json!({ "by": by.to_string(), "expires_at": wanted }),
    )
    .await?;
    let row = store::vessels::get(&mut tx, row.id)
        .await?
        .ok_or_else(|| OpError::bug("a vessel vanished inside its own transaction"))?;
    events::emit(
        &mut tx,
        Some(row.id),
        &EventKind::VesselExtended,
        &row.event(None),
    )
    .await?;
    tx.commit().await?;
    let mine = caller.owns(&row.owner_id);
    Ok(view(row, &[], mine))
}

/// Keep: the vessel is not reclaimed for idleness until the exemption ends
/// (`for_` or the undertaker's `keep_for`).
pub async fn keep(
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
    for_: Option<Span>,
) -> Result<VesselView, OpError> {
    caller.require(Action::KeepVessel)?;
    let span = for_.unwrap_or(ctx.config.undertaker.keep_for);
    let row = resolve(ctx, caller, key, audit::Action::VesselKeep).await?;
    // An exemption longer than a vessel may live is not an exemption, it is
    // an opt-out of idle reclaim.
    let max = ctx
        .config
        .queue(row.queue.as_str())
        .map(|q| q.max_lifetime)
        .unwrap_or(ctx.config.undertaker.keep_for);
    if span > max {
        return Err(OpError::invalid(
            "for",
            format!("keep for at most {max} in queue `{}`", row.queue),
        ));
    }
    if row.state() != VesselState::Running {
        return Err(OpError::conflict(
            ErrorCode::NotRunning,
            format!("vessel `{}` is {}", row.name, row.state),
        ));
    }
    let until = later(ctx.clock.now(), span, "for")?;
    crate::undertaker::Undertaker::keep(&ctx.db, row.id, until).await?;
    let mut conn = ctx.db.acquire().await?;
    audit::record(
        &mut conn,
        &caller.subject,
        audit::Action::VesselKeep,
        Some(&row.id.to_string()),
        "ok",
        serde_json::json!({ "until": until }),
    )
    .await?;
    let mine = caller.owns(&row.owner_id);
    Ok(view(row, &[], mine))
}
