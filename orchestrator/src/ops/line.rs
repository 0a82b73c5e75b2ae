//! The line as an operation: every queue's waiting requests in order
//! (anyone who may see the fleet), an admin moving one to the front, and an
//! admin setting one person's limits in a queue.

use serde_json::json;
use uuid::Uuid;
use vessel_api::line::{Limits, Line, LineEntry, SetLimits};
use vessel_api::vessels::VesselView;
use vessel_api::{ByteSize, ErrorCode, QueueName, VesselName};

use super::view::view;
use super::{Action, Caller, Ctx, OpError};
use crate::store::{audit, line, users};

pub async fn show(ctx: &Ctx, caller: &Caller) -> Result<Line, OpError> {
    caller.require(Action::ReadLine)?;
    let mut conn = ctx.db.acquire().await?;
    let mut out = Line::default();
    for queue in ctx.config.queues.keys() {
        let Ok(name) = QueueName::parse(queue) else {
            continue;
        };
        let entries: Vec<LineEntry> = crate::line::places(&mut conn, queue, None)
            .await?
            .into_iter()
            .map(|(w, place)| LineEntry {
                id: w.waiter.id,
                name: VesselName::parse(&w.name)
                    .unwrap_or_else(|_| VesselName::parse("unnamed").expect("a valid name")),
                owner: w.owner_unix,
                owner_id: w.waiter.owner_id,
                gpus: w.waiter.ask.gpus.max(0) as u32,
                cpus: w.waiter.ask.cpus.max(0) as u32,
                memory: ByteSize(w.waiter.ask.memory.max(0) as u64),
                place,
            })
            .collect();
        if !entries.is_empty() {
            out.queues.insert(name, entries);
        }
    }
    Ok(out)
}

/// Moves a waiting request to the front of its queue's line.
pub async fn to_front(ctx: &Ctx, caller: &Caller, id: Uuid) -> Result<VesselView, OpError> {
    caller.require(Action::MoveToFront)?;
    let mut tx = ctx.db.begin().await?;
    let Some(row) = crate::store::vessels::get(&mut tx, id).await? else {
        return Err(OpError::NotFound(format!("no vessel `{id}`")));
    };
    if !line::to_front(&mut tx, id).await? {
        return Err(OpError::conflict(
            ErrorCode::NotWaiting,
            format!(
                "vessel `{}` is {}, not waiting in line",
                row.name, row.state
            ),
        ));
    }
    audit::record(
        &mut tx,
        &caller.subject,
        audit::Action::LineFront,
        Some(&id.to_string()),
        "ok",
        json!({ "name": row.name, "owner": row.owner_id, "queue": row.queue }),
    )
    .await?;
    // The pass the move triggers places it if it now fits; show it after.
    crate::line::pass(
        &mut tx,
        &ctx.config,
        row.queue.as_str(),
        ctx.clock.now(),
        None,
    )
    .await?;
    let place = crate::line::place_of(&mut tx, id, row.queue.as_str()).await?;
    let row = crate::store::vessels::get(&mut tx, id)
        .await?
        .ok_or_else(|| OpError::bug("a vessel vanished inside its own transaction"))?;
    tx.commit().await?;
    let mut view = view(row, &[], false);
    view.line = place;
    Ok(view)
}

/// Sets one person's limits in a queue (`None` for the queue's own).
pub async fn set_limits(
    ctx: &Ctx,
    caller: &Caller,
    subject: &str,
    queue: &str,
    body: SetLimits,
) -> Result<Limits, OpError> {
    caller.require(Action::SetLimits)?;
    let Some(qc) = ctx.config.queue(queue) else {
        return Err(OpError::invalid("queue", format!("no queue `{queue}`")));
    };
    let queue_name =
        QueueName::parse(queue).map_err(|e| OpError::invalid("queue", e.to_string()))?;
    if users::find(&ctx.db, subject).await?.is_none() {
        return Err(OpError::NotFound(format!(
            "no user `{subject}`: they have not used Vessel yet"
        )));
    }
    let as_i32 = |v: Option<u32>, field: &str| -> Result<Option<i32>, OpError> {
        v.map(|n| i32::try_from(n).map_err(|_| OpError::invalid(field, "too large")))
            .transpose()
    };
    let max_gpus = as_i32(body.max_gpus, "max_gpus")?;
    let max_vessels = as_i32(body.max_vessels, "max_vessels")?;
    let mut tx = ctx.db.begin().await?;
    line::set_override(&mut tx, subject, queue, max_gpus, max_vessels).await?;
    audit::record(
        &mut tx,
        &caller.subject,
        audit::Action::UserLimits,
        Some(subject),
        "ok",
        json!({ "queue": queue, "max_gpus": max_gpus, "max_vessels": max_vessels }),
    )
    .await?;
    let o = line::override_of(&mut tx, subject, queue).await?;
    tx.commit().await?;
    let limit = crate::line::limit_with(qc, o.as_ref());
    Ok(Limits {
        subject: subject.to_string(),
        queue: queue_name,
        max_gpus: limit.max_gpus.map(|n| n as u32),
        max_vessels: limit.max_vessels.map(|n| n as u32),
        overridden: o.is_some(),
    })
}
