//! The waiting line: a request that does not fit waits as `pending`, and a
//! placement pass places what fits, in the order `policy` decides, each
//! placement through the one reservation statement. A pass runs inside a
//! create (so a newcomer is never placed ahead of those already waiting)
//! and whenever something may let a request in: every replica's worker
//! listens on `vessel_line`, which the database's triggers notify when a
//! reservation is freed, a host changes what it offers, or a request
//! leaves the line. Passes over one queue are serialised by an advisory
//! lock, so two replicas never place one request twice.

pub mod policy;
mod worker;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tracing::{info, warn};
use uuid::Uuid;
use vessel_api::events::{EventKind, EventPayload, VesselEvent};
use vessel_api::line::{Estimate, LinePlace};

use crate::config::{Config, QueueConfig};
use crate::domain::{VesselName, VesselState};
use crate::lineup::{Limit, Release, Usage};
use crate::placement;
use crate::store::{self, audit, events, jobs, line};
use policy::{Plan, Rules, Verdict};

pub use worker::LineWorker;

/// Who the audit log names for what a pass does on its own.
pub const ACTOR: &str = "vessel-line";

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassOutcome {
    pub placed: Vec<Uuid>,
    pub expired: Vec<Uuid>,
    pub waiting: usize,
}

fn default_limit(q: &QueueConfig) -> Limit {
    Limit {
        max_gpus: q.max_gpus.map(i64::from),
        max_vessels: q.max_vessels.map(i64::from),
    }
}

/// An owner's limits in a queue: an admin's override field by field, else
/// the queue's.
pub fn limit_with(q: &QueueConfig, o: Option<&line::Override>) -> Limit {
    let d = default_limit(q);
    match o {
        None => d,
        Some(o) => Limit {
            max_gpus: o.max_gpus.map(i64::from).or(d.max_gpus),
            max_vessels: o.max_vessels.map(i64::from).or(d.max_vessels),
        },
    }
}

/// One placement pass over `queue`, in the caller's transaction (which it
/// locks for the queue until commit). `fresh` is a request created in this
/// same transaction: it is told of its place by its create, not an event.
pub async fn pass(
    conn: &mut PgConnection,
    config: &Config,
    queue: &str,
    now: DateTime<Utc>,
    fresh: Option<Uuid>,
) -> Result<PassOutcome, sqlx::Error> {
    let Some(qc) = config.queue(queue) else {
        return Ok(PassOutcome::default());
    };
    line::lock(conn, queue).await?;
    let mut outcome = PassOutcome {
        expired: expire(conn, queue, now).await?,
        ..Default::default()
    };
    let mut hosts = line::hosts(conn, queue).await?;
    let waiting = line::waiting(conn, queue).await?;
    if waiting.is_empty() {
        return Ok(outcome);
    }
    let (mut usage, limits) = usage_and_limits(conn, qc, queue, &waiting).await?;
    let rules = Rules {
        queue,
        hold_after: qc.hold_after.duration(),
        limits: &limits,
        default_limit: default_limit(qc),
    };
    let waiters: Vec<_> = waiting.iter().map(|w| w.waiter.clone()).collect();
    let Plan { verdicts, hold } = policy::plan(&rules, &mut hosts, &waiters, &mut usage, now);

    let mut still = Vec::new();
    for (w, (id, verdict)) in waiting.iter().zip(verdicts) {
        let reason = match verdict {
            Verdict::Place { host } => {
                let avoid = hold.filter(|(holder, _)| *holder != id).map(|(_, h)| h);
                match place(conn, w, queue, host, avoid).await? {
                    Placed::Yes => {
                        outcome.placed.push(id);
                        continue;
                    }
                    Placed::Gone => continue,
                    Placed::NoRoom => {
                        // The counters and the claims disagree: trust the
                        // claims, and say what the line sees.
                        warn!(vessel = %id, host, "the line's choice did not fit");
                        policy::why_waiting(queue, &hosts, &w.waiter.ask, avoid)
                    }
                }
            }
            Verdict::Wait { reason } => reason,
        };
        still.push((w, reason));
    }
    outcome.waiting = still.len();
    tell_places(conn, queue, &still, hold, fresh).await?;
    count_from_line(conn, queue, &outcome, fresh, now).await?;
    Ok(outcome)
}

/// What the line's owners hold in the queue, and their limits.
async fn usage_and_limits(
    conn: &mut PgConnection,
    qc: &QueueConfig,
    queue: &str,
    waiting: &[line::Waiting],
) -> Result<(HashMap<String, Usage>, HashMap<String, Limit>), sqlx::Error> {
    let mut owners: Vec<String> = waiting.iter().map(|w| w.waiter.owner_id.clone()).collect();
    owners.sort();
    owners.dedup();
    let usage = line::usage(conn, queue, &owners)
        .await?
        .into_iter()
        .collect();
    let limits = line::overrides(conn, queue)
        .await?
        .into_iter()
        .map(|o| (o.user_id.clone(), limit_with(qc, Some(&o))))
        .collect();
    Ok((usage, limits))
}

/// Time in line of what the pass placed from the line (not its own
/// create's request), for the histogram and the log.
async fn count_from_line(
    conn: &mut PgConnection,
    queue: &str,
    outcome: &PassOutcome,
    fresh: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let from_line: Vec<Uuid> = outcome
        .placed
        .iter()
        .copied()
        .filter(|id| Some(*id) != fresh)
        .collect();
    if from_line.is_empty() {
        return Ok(());
    }
    for secs in line::waited(conn, &from_line, now).await? {
        crate::metrics::placed_from_line(secs);
    }
    info!(
        queue,
        placed = from_line.len(),
        waiting = outcome.waiting,
        "placed from the line"
    );
    Ok(())
}

enum Placed {
    Yes,
    /// Cancelled meanwhile.
    Gone,
    NoRoom,
}

/// Reserves for one waiting request, with its job, event and audit row.
async fn place(
    conn: &mut PgConnection,
    w: &line::Waiting,
    queue: &str,
    host: i64,
    avoid: Option<i64>,
) -> Result<Placed, sqlx::Error> {
    let id = w.waiter.id;
    if !line::still_waiting(conn, id).await? {
        return Ok(Placed::Gone);
    }
    let request = placement::Request {
        vessel_id: id,
        queue,
        gpus: w.waiter.ask.gpus as i32,
        cpus: w.waiter.ask.cpus as i32,
        memory_bytes: w.waiter.ask.memory,
        on_host: Some(host),
        not_on_host: avoid,
    };
    let Some(placed) = placement::reserve(conn, &request).await? else {
        return Ok(Placed::NoRoom);
    };
    jobs::enqueue(&mut *conn, id).await?;
    let row = store::vessels::get(&mut *conn, id)
        .await?
        .ok_or_else(|| sqlx::Error::RowNotFound)?;
    events::emit(
        &mut *conn,
        Some(id),
        &EventKind::Vessel(VesselState::Provisioning),
        &row.event(None),
    )
    .await?;
    audit::record(
        &mut *conn,
        ACTOR,
        audit::Action::VesselPlace,
        Some(&id.to_string()),
        "ok",
        serde_json::json!({ "name": w.name, "owner": w.waiter.owner_id, "placement": placed }),
    )
    .await?;
    Ok(Placed::Yes)
}

/// Ends what waited too long, each with its event and audit row.
async fn expire(
    conn: &mut PgConnection,
    queue: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids = line::expire_overdue(conn, queue, now).await?;
    for id in &ids {
        let Some(row) = store::vessels::get(&mut *conn, *id).await? else {
            continue;
        };
        events::emit(
            &mut *conn,
            Some(*id),
            &EventKind::Vessel(VesselState::Expired),
            &row.event(row.reason.clone()),
        )
        .await?;
        audit::record(
            &mut *conn,
            ACTOR,
            audit::Action::VesselExpire,
            Some(&id.to_string()),
            "ok",
            serde_json::json!({ "name": row.name, "owner": row.owner_id }),
        )
        .await?;
    }
    Ok(ids)
}

/// Writes each remaining request's place, reason and hold, and tells those
/// whose place or reason changed (`vessel.queued`), in one statement each.
async fn tell_places(
    conn: &mut PgConnection,
    queue: &str,
    still: &[(&line::Waiting, String)],
    hold: Option<(Uuid, i64)>,
    fresh: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    let (mut ids, mut positions, mut reasons, mut held) = (vec![], vec![], vec![], vec![]);
    let mut news = Vec::new();
    for (n, (w, reason)) in still.iter().enumerate() {
        let id = w.waiter.id;
        let position = n as i32 + 1;
        let holds = hold.filter(|(holder, _)| *holder == id).map(|(_, h)| h);
        // `line_position` is the place last told, not the live one (reads
        // compute that from the order).
        if w.reason.as_deref() == Some(reason)
            && w.waiter.held_host == holds
            && !policy::worth_telling(w.position, position)
        {
            continue;
        }
        ids.push(id);
        positions.push(position);
        reasons.push(reason.clone());
        held.push(holds);
        if Some(id) != fresh {
            let payload = EventPayload::Vessel(VesselEvent {
                id,
                name: VesselName::parse(&w.name)
                    .unwrap_or_else(|_| VesselName::parse("unnamed").expect("a valid name")),
                owner_id: w.waiter.owner_id.clone(),
                state: VesselState::Pending,
                reason: Some(reason.clone()),
                message: Some(format!("#{position} in line for {queue}: {reason}")),
            });
            news.push((id, EventKind::VesselQueued, payload));
        }
    }
    if !ids.is_empty() {
        line::set_places(conn, &ids, &positions, &reasons, &held).await?;
    }
    events::emit_many(conn, &news).await
}

/// A waiting request's place as the API shows it, estimate included.
pub async fn place_of(
    conn: &mut PgConnection,
    id: Uuid,
    queue: &str,
) -> Result<Option<LinePlace>, sqlx::Error> {
    let places = places(conn, queue, Some(id)).await?;
    Ok(places
        .into_iter()
        .find(|(w, _)| w.waiter.id == id)
        .map(|(_, p)| p))
}

/// Every waiting request of a queue with its place (or only `only`'s, when
/// given: the estimate is then computed for it alone).
pub async fn places(
    conn: &mut PgConnection,
    queue: &str,
    only: Option<Uuid>,
) -> Result<Vec<(line::Waiting, LinePlace)>, sqlx::Error> {
    let waiting = line::waiting(conn, queue).await?;
    let of = waiting.len() as u32;
    let hosts = line::hosts(conn, queue).await?;
    let mut releases: HashMap<i64, Vec<Release>> = HashMap::new();
    for (host, r) in line::releases(conn, queue).await? {
        releases.entry(host).or_default().push(r);
    }
    for ending in releases.values_mut() {
        ending.sort_by_key(|r| r.expires_at);
    }
    let names: HashMap<i64, &str> = hosts.iter().map(|h| (h.id, h.name.as_str())).collect();
    let mut out = Vec::new();
    for (n, w) in waiting.iter().enumerate() {
        if only.is_some_and(|o| o != w.waiter.id) {
            continue;
        }
        let estimate = policy::estimate(&hosts, &releases, &w.waiter.ask)
            .map(|(by, host, vessels)| Estimate { by, host, vessels });
        out.push((
            w.clone(),
            LinePlace {
                position: n as u32 + 1,
                of,
                reason: w
                    .reason
                    .clone()
                    .unwrap_or_else(|| "waiting for a placement pass".into()),
                since: w.waiter.queued_at,
                gives_up_at: w.wait_until,
                holds: w
                    .waiter
                    .held_host
                    .and_then(|h| names.get(&h).map(|n| n.to_string())),
                estimate,
            },
        ));
    }
    Ok(out)
}
