//! Creating, listing, showing, extending and killing vessels.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tracing::info;
use uuid::Uuid;

use super::auth::{perm, Caller};
use super::error::ApiError;
use super::keys::current_user;
use super::{AppState, JsonBody};
use crate::domain::{QueueName, VesselName, VesselState};
use crate::placement;
use crate::store::{self, audit, events, jobs, users, vessels::VesselRow};
use crate::units::{ByteSize, Span};

/// Placement races lost before giving up; each loss means another request
/// took the devices, so this bounds the wait, not correctness.
const PLACEMENT_ATTEMPTS: u32 = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVessel {
    queue: String,
    gpus: Option<u32>,
    cpus: Option<u32>,
    /// `64G`, `512M`, or a number of bytes.
    memory: Option<ByteSize>,
    image: Option<String>,
    name: Option<String>,
    /// `2d`, `24h`, `90m`.
    lifetime: Option<String>,
}

/// A vessel as the API shows it; `ssh` appears once it is running.
#[derive(Debug, Serialize)]
pub struct VesselView {
    pub id: Uuid,
    pub name: String,
    pub owner: String,
    pub queue: String,
    pub image: String,
    pub gpus: i32,
    pub cpus: i32,
    pub memory: String,
    pub memory_bytes: i64,
    pub state: String,
    pub reason: Option<String>,
    pub host: Option<String>,
    pub gpu_uuids: Vec<String>,
    pub cores: Vec<i32>,
    pub address: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
    pub started_at: Option<chrono::DateTime<Utc>>,
    pub ended_at: Option<chrono::DateTime<Utc>>,
    pub expires_at: chrono::DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshAccess>,
}

#[derive(Debug, Serialize)]
pub struct SshAccess {
    pub host_alias: String,
    pub address: String,
    pub user: String,
    /// Ready to paste into `~/.ssh/config`.
    pub config: String,
    /// Ready to append to `~/.ssh/known_hosts`: no trust on first use.
    pub known_hosts: String,
    pub vscode_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jupyter_url: Option<String>,
}

impl VesselView {
    pub fn from_row(v: VesselRow, key_fingerprints: &[String]) -> Self {
        let ssh = match (&v.address, &v.host_public_key, v.state()) {
            (Some(address), Some(host_key), VesselState::Running) => {
                let hint = match key_fingerprints.first() {
                    Some(fp) => format!("the private half of your registered key {fp}"),
                    None => "the private half of your registered key".to_string(),
                };
                // With MagicDNS the config names the vessel, and the
                // known_hosts line vouches for the name and the address.
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
            _ => None,
        };
        VesselView {
            id: v.id,
            memory: ByteSize(v.memory_bytes.max(0) as u64).to_string(),
            name: v.name,
            owner: v.owner_unix,
            queue: v.queue,
            image: v.image,
            gpus: v.gpus,
            cpus: v.cpus,
            memory_bytes: v.memory_bytes,
            state: v.state,
            reason: v.reason,
            host: v.host_name,
            gpu_uuids: v.gpu_uuids,
            cores: v.cores,
            address: v.address,
            created_at: v.created_at,
            started_at: v.started_at,
            ended_at: v.ended_at,
            expires_at: v.expires_at,
            ssh,
        }
    }
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
    let queue =
        QueueName::parse(&body.queue).map_err(|e| ApiError::invalid("queue", e.to_string()))?;
    let Some(defaults) = state.config.queue(queue.as_str()) else {
        let known: Vec<&str> = state.config.queues.keys().map(String::as_str).collect();
        return Err(ApiError::invalid(
            "queue",
            format!("no queue `{}`; queues: {}", body.queue, known.join(", ")),
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
    let image = body.image.unwrap_or_else(|| defaults.image.clone());
    if !valid_image(&image) {
        return Err(ApiError::invalid(
            "image",
            format!("`{image}` is not an image name"),
        ));
    }
    if !defaults.images.is_empty() && !defaults.images.contains(&image) {
        return Err(ApiError::invalid(
            "image",
            format!(
                "queue `{}` allows these images: {}",
                queue.as_str(),
                defaults.images.join(", ")
            ),
        ));
    }
    let name = body
        .name
        .map(|n| VesselName::parse(&n).map_err(|e| ApiError::invalid("name", e.to_string())))
        .transpose()?;
    let lifetime = match body.lifetime {
        Some(l) => Span::parse(&l).map_err(|e| ApiError::invalid("lifetime", e.to_string()))?,
        None => defaults.lifetime,
    };
    if lifetime > defaults.max_lifetime {
        return Err(ApiError::invalid(
            "lifetime",
            format!(
                "at most {} in queue `{}`",
                defaults.max_lifetime,
                queue.as_str()
            ),
        ));
    }
    Ok(Plan {
        queue,
        gpus: gpus as i32,
        cpus: cpus as i32,
        memory,
        image,
        name,
        lifetime,
    })
}

fn valid_image(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !s.starts_with(['-', '.', '/', ':'])
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

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateVessel>,
) -> Result<(StatusCode, Json<VesselView>), ApiError> {
    let plan = plan(&state, body)?;
    let user = current_user(&state, &caller).await?;
    let keys = users::keys(&state.db, &user.id).await?;
    if keys.is_empty() {
        return Err(ApiError::Invalid {
            field: None,
            message: "you have no SSH key registered: add one first \
                      (POST /v1/me/keys {\"public_key\": \"ssh-ed25519 AAAA…\"})"
                .into(),
        });
    }
    let id = Uuid::new_v4();
    let name = plan
        .name
        .as_ref()
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| generated_name(&plan.queue));
    let jupyter_token = hex_token();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(plan.lifetime.duration())
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    let request = placement::Request {
        vessel_id: id,
        queue: plan.queue.as_str(),
        gpus: plan.gpus,
        cpus: plan.cpus,
        memory_bytes: plan.memory.bytes() as i64,
    };

    for attempt in 0..PLACEMENT_ATTEMPTS {
        let mut tx = state.db.begin().await?;
        let inserted = store::vessels::insert(
            &mut tx,
            &store::vessels::NewVessel {
                id,
                name: &name,
                owner_id: &user.id,
                queue: plan.queue.as_str(),
                image: &plan.image,
                gpus: plan.gpus,
                cpus: plan.cpus,
                memory_bytes: plan.memory.bytes() as i64,
                expires_at,
                jupyter_token: &jupyter_token,
            },
        )
        .await;
        match inserted {
            Ok(()) => {}
            Err(e) if store::is_unique_violation(&e) => {
                return Err(ApiError::Conflict {
                    error: "name_taken",
                    message: format!("you already have a live vessel named `{name}`"),
                });
            }
            Err(e) => return Err(e.into()),
        }
        match placement::reserve(&mut tx, &request).await {
            Ok(Some(placed)) => {
                jobs::enqueue(&mut tx, id).await?;
                let row = store::vessels::get(&mut tx, id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("vessel vanished".into()))?;
                events::emit(
                    &mut tx,
                    Some(id),
                    "vessel.provisioning",
                    serde_json::to_value(&row).unwrap_or_default(),
                )
                .await?;
                audit::record(
                    &mut tx,
                    &caller.subject,
                    "vessel.create",
                    Some(&id.to_string()),
                    "ok",
                    serde_json::json!({ "name": name, "placement": placed }),
                )
                .await?;
                tx.commit().await?;
                info!(vessel = %id, host = %placed.host, attempt, "placed");
                let fingerprints: Vec<String> = keys.into_iter().map(|k| k.fingerprint).collect();
                return Ok((
                    StatusCode::ACCEPTED,
                    Json(VesselView::from_row(row, &fingerprints)),
                ));
            }
            Ok(None) => {
                tx.rollback().await?;
                let message = placement::explain_no_capacity(&state.db, &request).await?;
                return Err(ApiError::Conflict {
                    error: "no_capacity",
                    message,
                });
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
    Err(ApiError::Conflict {
        error: "busy",
        message: "the fleet is too busy to place this request right now; try again".into(),
    })
}

fn hex_token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Everyone's vessels (needs `vessels:manage:any` or `fleet:read`).
    #[serde(default)]
    all: bool,
    /// Include buried and failed ones.
    #[serde(default)]
    ended: bool,
    /// With `all`: only this owner's (a token subject).
    owner: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let owner = if q.all || q.owner.is_some() {
        if !(caller.can(perm::VESSELS_MANAGE_ANY) || caller.can(perm::FLEET_READ)) {
            return Err(ApiError::Forbidden(
                "listing others' vessels needs `vessels:manage:any` or `fleet:read`".into(),
            ));
        }
        q.owner
    } else {
        Some(current_user(&state, &caller).await?.id)
    };
    let rows = store::vessels::list(&state.db, owner.as_deref(), q.ended).await?;
    let views: Vec<VesselView> = rows
        .into_iter()
        .map(|r| VesselView::from_row(r, &[]))
        .collect();
    Ok(Json(serde_json::json!({ "vessels": views })))
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
    let row = if let Ok(id) = Uuid::parse_str(key) {
        store::vessels::get(&mut *state.db.acquire().await?, id).await?
    } else {
        let user = current_user(state, caller).await?;
        match store::vessels::by_owner_and_name(&state.db, &user.id, key).await? {
            Some(row) => Some(row),
            // An admin may name anyone's live vessel, if the name is unambiguous.
            None if caller.can(perm::VESSELS_MANAGE_ANY) => {
                let live: Vec<VesselRow> = store::vessels::list(&state.db, None, false)
                    .await?
                    .into_iter()
                    .filter(|v| v.name == key)
                    .collect();
                if live.len() > 1 {
                    let owners: Vec<&str> = live.iter().map(|v| v.owner_unix.as_str()).collect();
                    return Err(ApiError::Conflict {
                        error: "ambiguous",
                        message: format!(
                            "several live vessels are named `{key}` (owners: {}); use the id",
                            owners.join(", ")
                        ),
                    });
                }
                live.into_iter().next()
            }
            None => None,
        }
    };
    let row = row.ok_or_else(|| ApiError::NotFound(format!("no vessel `{key}`")))?;
    if row.owner_id != caller.subject && !caller.can(perm::VESSELS_MANAGE_ANY) {
        let mut conn = state.db.acquire().await?;
        audit::record(
            &mut conn,
            &caller.subject,
            action,
            Some(&row.id.to_string()),
            "denied",
            serde_json::json!({ "reason": "not the owner", "owner": row.owner_id }),
        )
        .await?;
        return Err(ApiError::Forbidden(format!("vessel `{key}` is not yours")));
    }
    Ok(row)
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
    Ok(Json(VesselView::from_row(row, &fingerprints)))
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
            return Err(ApiError::Conflict {
                error: "not_live",
                message: format!("vessel `{}` is already {}", row.name, row.state),
            })
        }
    };
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(VesselView::from_row(current, &[])),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    /// How much longer, from the later of now and the current expiry.
    by: String,
}

pub async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Extend>,
) -> Result<Json<VesselView>, ApiError> {
    let by = Span::parse(&body.by).map_err(|e| ApiError::invalid("by", e.to_string()))?;
    let row = resolve(&state, &caller, &key, "vessel.extend").await?;
    if !row.state().is_live() || row.state() == VesselState::Stopping {
        return Err(ApiError::Conflict {
            error: "not_live",
            message: format!("vessel `{}` is {}", row.name, row.state),
        });
    }
    let max = state
        .config
        .queue(&row.queue)
        .map(|q| q.max_lifetime)
        .unwrap_or(by);
    let now = Utc::now();
    let from = row.expires_at.max(now);
    let wanted = from + chrono::Duration::from_std(by.duration()).unwrap_or_default();
    let cap = now + chrono::Duration::from_std(max.duration()).unwrap_or_default();
    if wanted > cap {
        return Err(ApiError::invalid(
            "by",
            format!(
                "a vessel in queue `{}` can live at most {} from now",
                row.queue, max
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
        .ok_or_else(|| ApiError::Internal("vessel vanished".into()))?;
    events::emit(
        &mut tx,
        Some(row.id),
        "vessel.extended",
        serde_json::to_value(&row).unwrap_or_default(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(VesselView::from_row(row, &[])))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    /// How long to exempt the vessel from idle reclaim (default: the
    /// undertaker's `keep_for`).
    #[serde(rename = "for")]
    for_: Option<String>,
}

/// Keep: the vessel is not reclaimed for idleness until the exemption ends.
pub async fn keep(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Keep>,
) -> Result<Json<VesselView>, ApiError> {
    let span = match body.for_ {
        Some(f) => Span::parse(&f).map_err(|e| ApiError::invalid("for", e.to_string()))?,
        None => state.config.undertaker.keep_for,
    };
    let row = resolve(&state, &caller, &key, "vessel.keep").await?;
    if row.state() != VesselState::Running {
        return Err(ApiError::Conflict {
            error: "not_running",
            message: format!("vessel `{}` is {}", row.name, row.state),
        });
    }
    let until = state.clock.now() + chrono::Duration::from_std(span.duration()).unwrap_or_default();
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
    Ok(Json(VesselView::from_row(row, &[])))
}
