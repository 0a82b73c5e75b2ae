//! Creating, listing, showing, extending and killing vessels. Bodies and
//! answers are the contract's types (`vessel_api::vessels`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use rand::Rng;
use tracing::info;
use uuid::Uuid;
use vessel_api::events::EventKind;
use vessel_api::vessels::{
    CreateVessel, Extend, Keep, ListQuery, SshAccess, VesselList, VesselView,
};
use vessel_api::ErrorCode;

use super::auth::{perm, Caller};
use super::error::ApiError;
use super::keys::current_user;
use super::{AppState, JsonBody};
use crate::domain::{QueueName, VesselName, VesselState};
use crate::line::policy::Ask;
use crate::placement;
use crate::store::line as line_store;
use crate::store::{self, audit, events, jobs, users, users::User, vessels::VesselRow};
use crate::units::{ByteSize, Span};

/// A vessel as its viewer may see it: the SSH block (with the Jupyter
/// token) only for its owner, once it runs.
pub fn view(v: VesselRow, key_fingerprints: &[String], for_owner: bool) -> VesselView {
    let ssh = if for_owner {
        ssh_access(&v, key_fingerprints)
    } else {
        None
    };
    VesselView {
        id: v.id,
        name: VesselName::parse(&v.name)
            .unwrap_or_else(|_| VesselName::parse("unnamed").expect("a valid name")),
        state: v.state(),
        memory: ByteSize(v.memory_bytes.max(0) as u64),
        owner: v.owner_unix,
        owner_id: v.owner_id,
        queue: QueueName::parse(&v.queue)
            .unwrap_or_else(|_| QueueName::parse("unknown").expect("a valid queue")),
        image: v.image,
        gpus: v.gpus.max(0) as u32,
        cpus: v.cpus.max(0) as u32,
        reason: v.reason,
        host: v.host_name,
        gpu_uuids: v.gpu_uuids,
        cores: v.cores.into_iter().map(|c| c.max(0) as u32).collect(),
        address: v.address,
        created_at: v.created_at,
        started_at: v.started_at,
        ended_at: v.ended_at,
        expires_at: v.expires_at,
        ssh,
        line: None,
        idle: None,
    }
}

/// The undertaker's ledgers of the running ones among `views`.
async fn add_idle(state: &AppState, views: &mut [VesselView]) -> Result<(), ApiError> {
    let running: Vec<Uuid> = views
        .iter()
        .filter(|v| v.state == VesselState::Running)
        .map(|v| v.id)
        .collect();
    if running.is_empty() {
        return Ok(());
    }
    let ledgers: std::collections::HashMap<_, _> = store::idle::ledgers(&state.db, &running)
        .await?
        .into_iter()
        .collect();
    for v in views.iter_mut() {
        v.idle = ledgers.get(&v.id).cloned();
    }
    Ok(())
}

fn ssh_access(v: &VesselRow, key_fingerprints: &[String]) -> Option<SshAccess> {
    let (Some(address), Some(host_key), VesselState::Running) =
        (&v.address, &v.host_public_key, v.state())
    else {
        return None;
    };
    let hint = match key_fingerprints.first() {
        Some(fp) => format!("the private half of your registered key {fp}"),
        None => "the private half of your registered key".to_string(),
    };
    // With MagicDNS the config names the vessel, and the known_hosts line
    // vouches for the name and the address.
    let (host_name, known_as) = match &v.dns_name {
        Some(dns) => (dns.clone(), format!("{dns},{address}")),
        None => (address.clone(), address.clone()),
    };
    Some(SshAccess {
        host_alias: v.name.clone(),
        address: address.clone(),
        user: v.owner_unix.clone(),
        config: format!(
            "Host {name}\n    HostName {host_name}\n    User {user}\n    # IdentityFile: {hint}\n    IdentityFile ~/.ssh/id_ed25519\n",
            name = v.name,
            user = v.owner_unix,
        ),
        known_hosts: format!("{known_as} {host_key}"),
        vscode_url: format!(
            "vscode://vscode-remote/ssh-remote+{}/home/{}",
            v.name, v.owner_unix
        ),
        jupyter_url: v.jupyter_port.map(|port| {
            format!(
                "http://{address}:{port}/lab?token={}",
                v.jupyter_token.as_deref().unwrap_or_default()
            )
        }),
    })
}

/// A request with the queue's defaults filled in, every value checked.
struct Plan {
    queue: QueueName,
    gpus: i32,
    cpus: i32,
    memory: ByteSize,
    image: String,
    name: Option<VesselName>,
    lifetime: Span,
}

fn plan(state: &AppState, body: CreateVessel) -> Result<Plan, ApiError> {
    let queue = body
        .queue
        .ok_or_else(|| ApiError::invalid("queue", "which queue? name one"))?;
    let Some(defaults) = state.config.queue(queue.as_str()) else {
        let known: Vec<&str> = state.config.queues.keys().map(String::as_str).collect();
        return Err(ApiError::invalid(
            "queue",
            format!("no queue `{queue}`; queues: {}", known.join(", ")),
        ));
    };
    let gpus = body.gpus.unwrap_or(defaults.gpus);
    if gpus > 64 {
        return Err(ApiError::invalid("gpus", "at most 64"));
    }
    let cpus = body.cpus.unwrap_or(defaults.cpus);
    if !(1..=1024).contains(&cpus) {
        return Err(ApiError::invalid("cpus", "between 1 and 1024"));
    }
    let memory = body.memory.unwrap_or(defaults.memory);
    if memory.bytes() < 64 << 20 {
        return Err(ApiError::invalid("memory", "at least 64M"));
    }
    let image = body
        .image
        .map(String::from)
        .unwrap_or_else(|| defaults.image.clone());
    // Deny by default: a queue without an `images` list runs its default
    // image only, never whatever else happens to be on the host (another
    // team's private image).
    if image != defaults.image && !image_allowed(&image, &defaults.images) {
        let mut allowed = vec![defaults.image.as_str()];
        allowed.extend(
            defaults
                .images
                .iter()
                .map(String::as_str)
                .filter(|i| *i != defaults.image),
        );
        return Err(ApiError::invalid(
            "image",
            format!(
                "queue `{queue}` allows these images: {}",
                allowed.join(", ")
            ),
        ));
    }
    let lifetime = body.lifetime.unwrap_or(defaults.lifetime);
    if lifetime > defaults.max_lifetime {
        return Err(ApiError::invalid(
            "lifetime",
            format!("at most {} in queue `{queue}`", defaults.max_lifetime),
        ));
    }
    Ok(Plan {
        queue,
        gpus: gpus as i32,
        cpus: cpus as i32,
        memory,
        image,
        name: body.name,
        lifetime,
    })
}

/// An exact entry, or `repo:*` for any tag of one repository (`lab/cuda:*`).
fn image_allowed(image: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| match entry.strip_suffix(":*") {
        Some(repo) => image
            .strip_prefix(repo)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|tag| !tag.is_empty() && !tag.contains(['/', ':'])),
        None => entry == image,
    })
}

fn generated_name(queue: &QueueName) -> String {
    let mut rng = rand::thread_rng();
    let suffix: String = (0..4)
        .map(|_| {
            let n = rng.gen_range(0..36u8);
            (if n < 10 { b'0' + n } else { b'a' + n - 10 }) as char
        })
        .collect();
    let queue: String = queue
        .as_str()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(20)
        .collect();
    format!("v{queue}-{suffix}")
}

/// `now + span`, or a 422 on `field` when that is past what dates can hold.
fn later(now: DateTime<Utc>, span: Span, field: &str) -> Result<DateTime<Utc>, ApiError> {
    chrono::Duration::from_std(span.duration())
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| ApiError::invalid(field, format!("{span} is too long")))
}

/// Creates a vessel: placed at once when it fits behind those already
/// waiting, else it joins the line (202 `pending`, with its place), or with
/// `wait: false` is refused with 409 `no_capacity` and nothing written.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateVessel>,
) -> Result<(StatusCode, Json<VesselView>), ApiError> {
    let wait = body.wait.unwrap_or(true);
    let plan = plan(&state, body)?;
    let user = current_user(&state, &caller).await?;
    let fingerprints = key_fingerprints(&state, &user).await?;
    refuse_what_never_fits(&state, &user, &plan).await?;
    let now = state.clock.now();
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
    let queue = plan.queue.as_str();
    let max_wait = state
        .config
        .queue(queue)
        .map(|q| q.max_wait)
        .unwrap_or_else(|| Span::from_secs(86_400));

    let mut tx = state.db.begin().await?;
    insert_vessel(&mut tx, &user, &plan, &vessel).await?;
    line_store::join(&mut tx, vessel.id, now, later(now, max_wait, "wait")?).await?;
    let outcome = crate::line::pass(&mut tx, &state.config, queue, now, Some(vessel.id)).await?;
    let placed = outcome.placed.contains(&vessel.id);
    if !placed {
        if let Some(refusal) = refuse_waiting(&state, &mut tx, &user, wait, &plan, &vessel).await? {
            tx.rollback().await?;
            // The pass placed or expired others too; it is undone with the
            // rest, so ask for it again.
            if !outcome.placed.is_empty() || !outcome.expired.is_empty() {
                line_store::wake(&mut *state.db.acquire().await?, queue).await?;
            }
            return Err(refusal);
        }
    }
    let row = store::vessels::get(&mut tx, vessel.id)
        .await?
        .ok_or_else(|| ApiError::bug("a vessel vanished inside its own transaction"))?;
    let place = if placed {
        None
    } else {
        crate::line::place_of(&mut tx, vessel.id, queue).await?
    };
    if let Some(p) = &place {
        events::emit(
            &mut tx,
            Some(vessel.id),
            &EventKind::Vessel(VesselState::Pending),
            &row.event(Some(format!(
                "#{} in line for {queue}: {}",
                p.position, p.reason
            ))),
        )
        .await?;
    }
    audit::record(
        &mut tx,
        &caller.subject,
        "vessel.create",
        Some(&vessel.id.to_string()),
        "ok",
        serde_json::json!({
            "name": vessel.name,
            "queued": !placed,
            "position": place.as_ref().map(|p| p.position),
        }),
    )
    .await?;
    tx.commit().await?;
    info!(vessel = %vessel.id, placed, "created");
    let mut view = view(row, &fingerprints, true);
    view.line = place;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A request no host of its queue could hold even empty, or that alone is
/// over its owner's limit, would wait forever: 422 at once, naming why.
async fn refuse_what_never_fits(
    state: &AppState,
    user: &User,
    plan: &Plan,
) -> Result<(), ApiError> {
    let queue = plan.queue.as_str();
    let ask = Ask {
        gpus: plan.gpus as i64,
        cpus: plan.cpus as i64,
        memory: plan.memory.bytes() as i64,
    };
    let mut conn = state.db.acquire().await?;
    if let Some(qc) = state.config.queue(queue) {
        let o = line_store::override_of(&mut conn, &user.id, queue).await?;
        let limits = std::collections::HashMap::from([(
            user.id.clone(),
            crate::line::limit_with(qc, o.as_ref()),
        )]);
        let rules = crate::line::policy::Rules {
            queue,
            hold_after: qc.hold_after.duration(),
            limits: &limits,
            default_limit: Default::default(),
        };
        if let Some(why) = rules.never_within_limit(&user.id, &ask) {
            return Err(ApiError::invalid(
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
    Err(ApiError::invalid(field, message))
}

/// Why a request that did not fit must not wait: the caller said not to
/// (409 `no_capacity`, what is free where), or has too many waiting.
async fn refuse_waiting(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: &User,
    wait: bool,
    plan: &Plan,
    vessel: &NewVesselPlan,
) -> Result<Option<ApiError>, ApiError> {
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
        return Ok(Some(ApiError::conflict(ErrorCode::NoCapacity, message)));
    }
    let max = state.config.line.max_pending as i64;
    let waiting = line_store::pending_of(tx, &user.id).await?;
    if waiting > max {
        return Ok(Some(ApiError::conflict(
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
async fn key_fingerprints(state: &AppState, user: &User) -> Result<Vec<String>, ApiError> {
    let keys = users::keys(&state.db, &user.id).await?;
    if keys.is_empty() {
        return Err(ApiError::Invalid {
            field: None,
            message: "you have no SSH key registered: add one first \
                      (POST /v1/me/keys {\"public_key\": \"ssh-ed25519 AAAA…\"})"
                .into(),
        });
    }
    Ok(keys.into_iter().map(|k| k.fingerprint).collect())
}

/// What a create decided before touching the database.
struct NewVesselPlan {
    id: Uuid,
    name: String,
    jupyter_token: String,
    expires_at: DateTime<Utc>,
}

async fn insert_vessel(
    tx: &mut sqlx::PgConnection,
    user: &User,
    plan: &Plan,
    vessel: &NewVesselPlan,
) -> Result<(), ApiError> {
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
        Err(e) if store::is_unique_violation(&e) => Err(ApiError::conflict(
            ErrorCode::NameTaken,
            format!("you already have a live vessel named `{}`", vessel.name),
        )),
        Err(e) => Err(e.into()),
    }
}

fn hex_token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<VesselList>, ApiError> {
    let owner = if q.all || q.owner.is_some() {
        // Not `fleet:read`: every researcher has that, and a vessel lists
        // its owner's access. The fleet view is the everyone-view.
        if !caller.can(perm::VESSELS_MANAGE_ANY) {
            return Err(ApiError::Forbidden(
                "listing others' vessels needs `vessels:manage:any` (admins); `/v1/fleet` shows the fleet".into(),
            ));
        }
        q.owner
    } else {
        Some(current_user(&state, &caller).await?.id)
    };
    let rows = store::vessels::list(&state.db, owner.as_deref(), q.ended).await?;
    let places = places_of(&state, &rows).await?;
    let mut vessels: Vec<VesselView> = rows
        .into_iter()
        .map(|r| {
            let mine = r.owner_id == caller.subject;
            let place = places.get(&r.id).cloned();
            let mut v = view(r, &[], mine);
            v.line = place;
            v
        })
        .collect();
    add_idle(&state, &mut vessels).await?;
    Ok(Json(VesselList { vessels }))
}

/// The places in line of the waiting ones among `rows`, one read per queue.
async fn places_of(
    state: &AppState,
    rows: &[VesselRow],
) -> Result<std::collections::HashMap<Uuid, vessel_api::line::LinePlace>, ApiError> {
    let queues: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.state() == VesselState::Pending)
        .map(|r| r.queue.as_str())
        .collect();
    let mut out = std::collections::HashMap::new();
    let mut conn = state.db.acquire().await?;
    for queue in queues {
        for (w, place) in crate::line::places(&mut conn, queue, None).await? {
            out.insert(w.waiter.id, place);
        }
    }
    Ok(out)
}

/// Finds a vessel by id or by the caller's name for it, and checks the
/// caller may `action` it: their own, or any with `vessels:manage:any`. A
/// refusal is audited.
async fn resolve(
    state: &AppState,
    caller: &Caller,
    key: &str,
    action: &str,
) -> Result<VesselRow, ApiError> {
    let row = find(state, caller, key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no vessel `{key}`")))?;
    if row.owner_id != caller.subject && !caller.can(perm::VESSELS_MANAGE_ANY) {
        let mut conn = state.db.acquire().await?;
        audit::record_denied(
            &mut conn,
            &caller.subject,
            action,
            &row.id.to_string(),
            serde_json::json!({ "reason": "not the owner", "owner": row.owner_id }),
        )
        .await?;
        return Err(ApiError::Forbidden(format!("vessel `{key}` is not yours")));
    }
    Ok(row)
}

/// By id; else the caller's own by name; else (admins) anyone's live one by
/// name, when the name is unambiguous.
async fn find(state: &AppState, caller: &Caller, key: &str) -> Result<Option<VesselRow>, ApiError> {
    if let Ok(id) = Uuid::parse_str(key) {
        return Ok(store::vessels::get(&mut *state.db.acquire().await?, id).await?);
    }
    let user = current_user(state, caller).await?;
    if let Some(row) = store::vessels::by_owner_and_name(&state.db, &user.id, key).await? {
        return Ok(Some(row));
    }
    if !caller.can(perm::VESSELS_MANAGE_ANY) {
        return Ok(None);
    }
    let live: Vec<VesselRow> = store::vessels::list(&state.db, None, false)
        .await?
        .into_iter()
        .filter(|v| v.name == key)
        .collect();
    if live.len() > 1 {
        let owners: Vec<&str> = live.iter().map(|v| v.owner_unix.as_str()).collect();
        return Err(ApiError::conflict(
            ErrorCode::Ambiguous,
            format!(
                "several live vessels are named `{key}` (owners: {}); use the id",
                owners.join(", ")
            ),
        ));
    }
    Ok(live.into_iter().next())
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<VesselView>, ApiError> {
    let row = resolve(&state, &caller, &key, "vessel.show").await?;
    let fingerprints: Vec<String> = users::keys(&state.db, &row.owner_id)
        .await?
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    let mine = row.owner_id == caller.subject;
    let place = if row.state() == VesselState::Pending {
        crate::line::place_of(&mut *state.db.acquire().await?, row.id, &row.queue).await?
    } else {
        None
    };
    let mut view = [view(row, &fingerprints, mine)];
    view[0].line = place;
    add_idle(&state, &mut view).await?;
    let [view] = view;
    Ok(Json(view))
}

pub async fn kill(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<(StatusCode, Json<VesselView>), ApiError> {
    let row = resolve(&state, &caller, &key, "vessel.kill").await?;
    let by_owner = row.owner_id == caller.subject;
    let reason = if by_owner {
        "killed by its owner".to_string()
    } else {
        format!("killed by admin {}", caller.subject)
    };
    let mut tx = state.db.begin().await?;
    // A request still waiting holds nothing: it leaves the line, done. If
    // it was placed meanwhile, it is stopped like any vessel.
    if row.state() == VesselState::Pending {
        let why = format!("cancelled while waiting: {reason}");
        let left = store::vessels::transition(
            &mut tx,
            row.id,
            &[VesselState::Pending],
            VesselState::Buried,
            Some(&why),
        )
        .await?;
        if let Some(now) = left {
            audit::record(
                &mut tx,
                &caller.subject,
                "vessel.cancel",
                Some(&row.id.to_string()),
                "ok",
                serde_json::json!({ "name": row.name }),
            )
            .await?;
            tx.commit().await?;
            crate::metrics::buried(crate::metrics::Burial::Cancelled);
            let mine = now.owner_id == caller.subject;
            return Ok((StatusCode::ACCEPTED, Json(view(now, &[], mine))));
        }
    }
    let moved = store::vessels::transition(
        &mut tx,
        row.id,
        &[
            VesselState::Requested,
            VesselState::Provisioning,
            VesselState::Running,
        ],
        VesselState::Stopping,
        Some(&reason),
    )
    .await?;
    let moved_now = moved.is_some();
    let current = match moved {
        Some(now) => {
            jobs::enqueue(&mut tx, row.id).await?;
            audit::record(
                &mut tx,
                &caller.subject,
                "vessel.kill",
                Some(&row.id.to_string()),
                "ok",
                serde_json::json!({ "name": row.name }),
            )
            .await?;
            now
        }
        None if row.state() == VesselState::Stopping => row,
        None => {
            return Err(ApiError::conflict(
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
    let mine = current.owner_id == caller.subject;
    Ok((StatusCode::ACCEPTED, Json(view(current, &[], mine))))
}

pub async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Extend>,
) -> Result<Json<VesselView>, ApiError> {
    let by = body.by;
    let row = resolve(&state, &caller, &key, "vessel.extend").await?;
    if !row.state().is_live() || row.state() == VesselState::Stopping {
        return Err(ApiError::conflict(
            ErrorCode::NotLive,
            format!("vessel `{}` is {}", row.name, row.state),
        ));
    }
    let max = state
        .config
        .queue(&row.queue)
        .map(|q| q.max_lifetime)
        .unwrap_or(by);
    let now = state.clock.now();
    let wanted = later(row.expires_at.max(now), by, "by")?;
    // The queue's limit is on the whole life, from when it started (time
    // spent waiting in line does not count): extending again and again
    // cannot make a vessel permanent.
    let cap = later(row.started_at.unwrap_or(row.created_at), max, "by")?;
    if wanted > cap {
        return Err(ApiError::invalid(
            "by",
            format!(
                "a vessel in queue `{}` lives at most {max} in all: this one can run until {} at the latest",
                row.queue,
                cap.format("%a %d %b %H:%M UTC")
            ),
        ));
    }
    let mut tx = state.db.begin().await?;
    store::vessels::set_expiry(&mut tx, row.id, wanted).await?;
    audit::record(
        &mut tx,
        &caller.subject,
        "vessel.extend",
        Some(&row.id.to_string()),
        "ok",
        serde_json::json!({ "by": by.to_string(), "expires_at": wanted }),
    )
    .await?;
    let row = store::vessels::get(&mut tx, row.id)
        .await?
        .ok_or_else(|| ApiError::bug("a vessel vanished inside its own transaction"))?;
    events::emit(
        &mut tx,
        Some(row.id),
        &EventKind::VesselExtended,
        &row.event(None),
    )
    .await?;
    tx.commit().await?;
    let mine = row.owner_id == caller.subject;
    Ok(Json(view(row, &[], mine)))
}

/// Keep: the vessel is not reclaimed for idleness until the exemption ends.
pub async fn keep(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Keep>,
) -> Result<Json<VesselView>, ApiError> {
    let span = body.for_.unwrap_or(state.config.undertaker.keep_for);
    let row = resolve(&state, &caller, &key, "vessel.keep").await?;
    // An exemption longer than a vessel may live is not an exemption, it is
    // an opt-out of idle reclaim.
    let max = state
        .config
        .queue(&row.queue)
        .map(|q| q.max_lifetime)
        .unwrap_or(state.config.undertaker.keep_for);
    if span > max {
        return Err(ApiError::invalid(
            "for",
            format!("keep for at most {max} in queue `{}`", row.queue),
        ));
    }
    if row.state() != VesselState::Running {
        return Err(ApiError::conflict(
            ErrorCode::NotRunning,
            format!("vessel `{}` is {}", row.name, row.state),
        ));
    }
    let until = later(state.clock.now(), span, "for")?;
    crate::undertaker::Undertaker::keep(&state.db, row.id, until).await?;
    let mut conn = state.db.acquire().await?;
    audit::record(
        &mut conn,
        &caller.subject,
        "vessel.keep",
        Some(&row.id.to_string()),
        "ok",
        serde_json::json!({ "until": until }),
    )
    .await?;
    let mine = row.owner_id == caller.subject;
    Ok(Json(view(row, &[], mine)))
}

#[cfg(test)]
mod tests {
    use super::image_allowed;

    #[test]
    fn images_are_allowed_exactly_or_by_repository() {
        let allowed = vec!["lab/cuda:*".to_string(), "vessel/base:1".to_string()];
        for ok in ["lab/cuda:12.4", "vessel/base:1"] {
            assert!(image_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "lab/cuda",
            "lab/cuda:",
            "lab/cudax:1",
            "lab/cuda:1/evil",
            "vessel/base:2",
            "other/img:1",
        ] {
            assert!(!image_allowed(bad, &allowed), "{bad}");
        }
    }
}
