//! Creating, listing, showing, extending and killing vessels. Bodies and
//! answers are the contract's types (`vessel_api::vessels`).

use std::time::Duration;

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
use crate::placement;
use crate::store::{self, audit, events, jobs, users, users::User, vessels::VesselRow};
use crate::units::{ByteSize, Span};

/// Placement races lost before giving up; each loss means another request
/// took the devices, so this bounds the wait, not correctness.
const PLACEMENT_ATTEMPTS: u32 = 64;

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
    }
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

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateVessel>,
) -> Result<(StatusCode, Json<VesselView>), ApiError> {
    let plan = plan(&state, body)?;
    let user = current_user(&state, &caller).await?;
    let fingerprints = key_fingerprints(&state, &user).await?;
    let vessel = NewVesselPlan {
        id: Uuid::new_v4(),
        name: plan
            .name
            .as_ref()
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|| generated_name(&plan.queue)),
        jupyter_token: hex_token(),
        expires_at: later(state.clock.now(), plan.lifetime, "lifetime")?,
    };
    let row = place_with_retries(&state, &caller, &user, &plan, &vessel).await?;
    Ok((StatusCode::ACCEPTED, Json(view(row, &fingerprints, true))))
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

/// Inserts the vessel and reserves its devices in one transaction; a lost
/// race for the same devices is retried on a fresh snapshot.
async fn place_with_retries(
    state: &AppState,
    caller: &Caller,
    user: &User,
    plan: &Plan,
    vessel: &NewVesselPlan,
) -> Result<VesselRow, ApiError> {
    let request = placement::Request {
        vessel_id: vessel.id,
        queue: plan.queue.as_str(),
        gpus: plan.gpus,
        cpus: plan.cpus,
        memory_bytes: plan.memory.bytes() as i64,
    };
    for attempt in 0..PLACEMENT_ATTEMPTS {
        let mut tx = state.db.begin().await?;
        insert_vessel(&mut tx, user, plan, vessel).await?;
        match placement::reserve(&mut tx, &request).await {
            Ok(Some(placed)) => {
                let row = announce_placed(&mut tx, caller, vessel, &placed).await?;
                tx.commit().await?;
                info!(vessel = %vessel.id, host = %placed.host, attempt, "placed");
                return Ok(row);
            }
            Ok(None) => {
                tx.rollback().await?;
                let message = placement::explain_no_capacity(&state.db, &request).await?;
                return Err(ApiError::conflict(ErrorCode::NoCapacity, message));
            }
            Err(e) if store::is_unique_violation(&e) || store::is_check_violation(&e) => {
                // Another placement took the same devices first: try again
                // on a fresh snapshot, after a short random pause so racing
                // requests spread out.
                tx.rollback().await?;
                let pause = rand::thread_rng().gen_range(1..=5 + attempt.min(20) as u64);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        ErrorCode::Busy,
        "the fleet is too busy to place this request right now; try again",
    ))
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

/// The job, the event and the audit row of a placement, in its transaction.
async fn announce_placed(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    vessel: &NewVesselPlan,
    placed: &placement::Placement,
) -> Result<VesselRow, ApiError> {
    jobs::enqueue(&mut *tx, vessel.id).await?;
    let row = store::vessels::get(&mut *tx, vessel.id)
        .await?
        .ok_or_else(|| ApiError::bug("a vessel vanished inside its own transaction"))?;
    events::emit(
        &mut *tx,
        Some(vessel.id),
        &EventKind::Vessel(VesselState::Provisioning),
        &row.event(None),
    )
    .await?;
    audit::record(
        &mut *tx,
        &caller.subject,
        "vessel.create",
        Some(&vessel.id.to_string()),
        "ok",
        serde_json::json!({ "name": vessel.name, "placement": placed }),
    )
    .await?;
    Ok(row)
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
    let vessels = rows
        .into_iter()
        .map(|r| {
            let mine = r.owner_id == caller.subject;
            view(r, &[], mine)
        })
        .collect();
    Ok(Json(VesselList { vessels }))
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
    Ok(Json(view(row, &fingerprints, mine)))
}

pub async fn kill(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<(StatusCode, Json<VesselView>), ApiError> {
    let row = resolve(&state, &caller, &key, "vessel.kill").await?;
    let reason = if row.owner_id == caller.subject {
        "killed by its owner".to_string()
    } else {
        format!("killed by admin {}", caller.subject)
    };
    let mut tx = state.db.begin().await?;
    let moved = store::vessels::transition(
        &mut tx,
        row.id,
        &[
            VesselState::Requested,
            VesselState::Pending,
            VesselState::Provisioning,
            VesselState::Running,
        ],
        VesselState::Stopping,
        Some(&reason),
    )
    .await?;
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
    // The queue's limit is on the whole life, from creation: extending again
    // and again cannot make a vessel permanent.
    let cap = later(row.created_at, max, "by")?;
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
