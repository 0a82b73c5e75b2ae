//! Creating a vessel: placed at once when it fits behind those already
//! waiting, else it joins the line (`pending`, with its place), or with
//! `wait: false` is refused with `no_capacity` and nothing written. A
//! request that could never run is refused at once, naming why.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tracing::info;
use uuid::Uuid;
use vessel_api::events::EventKind;
use vessel_api::line::LinePlace;
use vessel_api::vessels::{CreateVessel, VesselView};
use vessel_api::ErrorCode;

use super::people::current_user;
use super::plan::{generated_name, hex_token, plan, Plan};
use super::view::view;
use super::{later, Action, Caller, Ctx, OpError};
use crate::domain::VesselState;
use crate::line::policy::Ask;
use crate::placement;
use crate::store::line as line_store;
use crate::store::{self, audit, events, users, users::User};
use crate::units::Span;

/// What a create decided before touching the database.
struct NewVesselPlan {
    id: Uuid,
    name: String,
    jupyter_token: String,
    expires_at: DateTime<Utc>,
}

/// Creates a vessel for the caller; the answer's `line` is its place when
/// it waits.
pub async fn create(ctx: &Ctx, caller: &Caller, body: CreateVessel) -> Result<VesselView, OpError> {
    caller.require(Action::CreateVessel)?;
    let wait = body.wait.unwrap_or(true);
    let plan = plan(ctx, body)?;
    let user = current_user(ctx, caller).await?;
    let fingerprints = key_fingerprints(ctx, &user).await?;
    refuse_what_never_fits(ctx, &user, &plan).await?;
    let now = ctx.clock.now();
    let vessel = NewVesselPlan {
        id: Uuid::new_v4(),
        name: plan
            .name
            .as_ref()
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|| generated_name(&plan.queue)),
        jupyter_token: hex_token(),
        expires_at: later(now, plan.lifetime, "lifetime")?,
    };
    let (row, place) = write(ctx, caller, &user, wait, &plan, &vessel).await?;
    let mut view = view(row, &fingerprints, true);
    view.line = place;
    Ok(view)
}

/// The create's one transaction: the row, its place in line, a pass that
/// may place it at once, its event and audit row.
async fn write(
    ctx: &Ctx,
    caller: &Caller,
    user: &User,
    wait: bool,
    plan: &Plan,
    vessel: &NewVesselPlan,
) -> Result<(store::vessels::VesselRow, Option<LinePlace>), OpError> {
    let now = ctx.clock.now();
    let queue = plan.queue.as_str();
    let max_wait = ctx
        .config
        .queue(queue)
        .map(|q| q.max_wait)
        .unwrap_or_else(|| Span::from_secs(86_400));
    let mut tx = ctx.db.begin().await?;
    insert_vessel(&mut tx, user, plan, vessel).await?;
    line_store::join(&mut tx, vessel.id, now, later(now, max_wait, "wait")?).await?;
    let outcome = crate::line::pass(&mut tx, &ctx.config, queue, now, Some(vessel.id)).await?;
    let placed = outcome.placed.contains(&vessel.id);
    if !placed {
        if let Some(refusal) = refuse_waiting(ctx, &mut tx, user, wait, plan, vessel).await? {
            tx.rollback().await?;
            // The pass placed or expired others too; it is undone with the
            // rest, so ask for it again.
            if !outcome.placed.is_empty() || !outcome.expired.is_empty() {
                line_store::wake(&mut *ctx.db.acquire().await?, queue).await?;
            }
            return Err(refusal);
        }
    }
    let row = store::vessels::get(&mut tx, vessel.id)
        .await?
        .ok_or_else(|| OpError::bug("a vessel vanished inside its own transaction"))?;
    let place = if placed {
        None
    } else {
        crate::line::place_of(&mut tx, vessel.id, queue).await?
    };
    announce(&mut tx, caller, &row, vessel, place.as_ref()).await?;
    tx.commit().await?;
    info!(vessel = %vessel.id, placed, "created");
    Ok((row, place))
}

/// A waiting request's event with its place, and the create's audit row.
async fn announce(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    row: &store::vessels::VesselRow,
    vessel: &NewVesselPlan,
    place: Option<&LinePlace>,
) -> Result<(), OpError> {
    if let Some(p) = place {
        let words = format!("#{} in line for {}: {}", p.position, row.queue, p.reason);
        events::emit(
            tx,
            Some(vessel.id),
            &EventKind::Vessel(VesselState::Pending),
            &row.event(Some(words)),
        )
        .await?;
    }
    audit::record(
        tx,
        &caller.subject,
        audit::Action::VesselCreate,
        Some(&vessel.id.to_string()),
        "ok",
        serde_json::json!({
            "name": vessel.name,
            "queued": place.is_some(),
            "position": place.map(|p| p.position),
        }),
    )
    .await?;
    Ok(())
}

/// A request no host of its queue could hold even empty, or that alone is
/// over its owner's limit, would wait forever: 422 at once, naming why.
async fn refuse_what_never_fits(ctx: &Ctx, user: &User, plan: &Plan) -> Result<(), OpError> {
    let queue = plan.queue.as_str();
    let ask = Ask {
        gpus: plan.gpus as i64,
        cpus: plan.cpus as i64,
        memory: plan.memory.bytes() as i64,
    };
    let mut conn = ctx.db.acquire().await?;
    if let Some(qc) = ctx.config.queue(queue) {
        let o = line_store::override_of(&mut conn, &user.id, queue).await?;
        let limits = HashMap::from([(user.id.clone(), crate::line::limit_with(qc, o.as_ref()))]);
        let rules = crate::line::policy::Rules {
            queue,
            hold_after: qc.hold_after.duration(),
            limits: &limits,
            default_limit: Default::default(),
        };
        if let Some(why) = rules.never_within_limit(&user.id, &ask) {
            return Err(OpError::invalid(
                "gpus",
                format!("{why}: it could never run"),
            ));
        }
    }
    let hosts = line_store::hosts(&mut conn, queue).await?;
    // A host never reached yet has no known size: it might be large.
    if hosts.iter().any(|h| h.cores == 0) || hosts.iter().any(|h| h.could_ever_fit(&ask)) {
        return Ok(());
    }
    let field = if !hosts.iter().any(|h| h.gpus >= ask.gpus) {
        "gpus"
    } else if !hosts.iter().any(|h| h.cores >= ask.cpus) {
        "cpus"
    } else {
        "memory"
    };
    let message = match crate::line::policy::largest(&hosts) {
        Some(largest) => format!(
            "no host of queue `{queue}` could ever hold {}: the largest is {largest}",
            ask.describe()
        ),
        None => format!("queue `{queue}` has no hosts"),
    };
    Err(OpError::invalid(field, message))
}

/// Why a request that did not fit must not wait: the caller said not to
/// (409 `no_capacity`, what is free where), or has too many waiting.
async fn refuse_waiting(
    ctx: &Ctx,
    tx: &mut sqlx::PgConnection,
    user: &User,
    wait: bool,
    plan: &Plan,
    vessel: &NewVesselPlan,
) -> Result<Option<OpError>, OpError> {
    if !wait {
        let request = placement::Request {
            vessel_id: vessel.id,
            queue: plan.queue.as_str(),
            gpus: plan.gpus,
            cpus: plan.cpus,
            memory_bytes: plan.memory.bytes() as i64,
            on_host: None,
            not_on_host: None,
        };
        let message = placement::explain_no_capacity(tx, &request).await?;
        return Ok(Some(OpError::conflict(ErrorCode::NoCapacity, message)));
    }
    let max = ctx.config.line.max_pending as i64;
    let waiting = line_store::pending_of(tx, &user.id).await?;
    if waiting > max {
        return Ok(Some(OpError::conflict(
            ErrorCode::TooManyWaiting,
            format!(
                "you already have {} requests waiting (at most {max}); cancel one or wait for it",
                waiting - 1
            ),
        )));
    }
    Ok(None)
}

/// A vessel needs a key to be logged into: refuse early, saying how to add one.
async fn key_fingerprints(ctx: &Ctx, user: &User) -> Result<Vec<String>, OpError> {
    let keys = users::keys(&ctx.db, &user.id).await?;
    if keys.is_empty() {
        return Err(OpError::Invalid {
            field: None,
            message: "you have no SSH key registered: add one first \
                      (POST /v1/me/keys {\"public_key\": \"ssh-ed25519 AAAA…\"})"
                .into(),
        });
    }
    Ok(keys.into_iter().map(|k| k.fingerprint).collect())
}

async fn insert_vessel(
    tx: &mut sqlx::PgConnection,
    user: &User,
    plan: &Plan,
    vessel: &NewVesselPlan,
) -> Result<(), OpError> {
    let inserted = store::vessels::insert(
        tx,
        &store::vessels::NewVessel {
            id: vessel.id,
            name: &vessel.name,
            owner_id: &user.id,
            queue: plan.queue.as_str(),
            image: &plan.image,
            gpus: plan.gpus,
            cpus: plan.cpus,
            memory_bytes: plan.memory.bytes() as i64,
            expires_at: vessel.expires_at,
            jupyter_token: &vessel.jupyter_token,
        },
    )
    .await;
    match inserted {
        Ok(()) => Ok(()),
        Err(e) if store::is_unique_violation(&e) => Err(OpError::conflict(
            ErrorCode::NameTaken,
            format!("you already have a live vessel named `{}`", vessel.name),
        )),
        Err(e) => Err(e.into()),
    }
}
