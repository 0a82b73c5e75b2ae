//! The API's handlers: each extracts what the request carries, calls one
//! operation (`crate::ops`) and turns its answer into a status and JSON.
//! Nothing here decides; what a handler adds is HTTP (statuses, path and
//! query shapes).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;
use vessel_api::audit::{AuditList, AuditQuery};
use vessel_api::events::EventBatch;
use vessel_api::fleet::{FleetStatus, HostChange, HostState};
use vessel_api::line::{Limits, Line, SetLimits};
use vessel_api::signin::SignInConfig;
use vessel_api::users::{
    AddKey, IdentityLink, KeyAdded, KeyList, LinkIdentity, LinkList, Me, SetUser, UserList,
    UserView,
};
use vessel_api::vessels::{
    CreateVessel, Extend, Keep, ListQuery, VesselList, VesselView, WakeVessel,
};

use super::JsonBody;
use crate::ops::{self, Caller, Ctx, OpError};

type Answer<T> = Result<Json<T>, OpError>;

pub async fn sign_in_config(State(ctx): State<Ctx>) -> Answer<SignInConfig> {
    ops::people::sign_in_config(&ctx).map(Json)
}

pub async fn metrics(State(ctx): State<Ctx>, caller: Caller) -> Result<impl IntoResponse, OpError> {
    let text = ops::fleet::metrics(&ctx, &caller).await?;
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

pub async fn me(State(ctx): State<Ctx>, caller: Caller) -> Answer<Me> {
    ops::people::me(&ctx, &caller).await.map(Json)
}

pub async fn keys(State(ctx): State<Ctx>, caller: Caller) -> Answer<KeyList> {
    ops::people::keys(&ctx, &caller).await.map(Json)
}

pub async fn add_key(
    State(ctx): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody<AddKey>,
) -> Result<(StatusCode, Json<KeyAdded>), OpError> {
    let added = ops::people::add_key(&ctx, &caller, body).await?;
    let status = if added.added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(added)))
}

pub async fn remove_key(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(fingerprint): Path<String>,
) -> Result<StatusCode, OpError> {
    ops::people::remove_key(&ctx, &caller, &fingerprint).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_vessels(
    State(ctx): State<Ctx>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Answer<VesselList> {
    ops::vessels::list(&ctx, &caller, q).await.map(Json)
}

/// 202: placed and provisioning, or waiting in line (its `line` says where).
pub async fn create(
    State(ctx): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateVessel>,
) -> Result<(StatusCode, Json<VesselView>), OpError> {
    let view = ops::create::create(&ctx, &caller, body).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

pub async fn show(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(key): Path<String>,
) -> Answer<VesselView> {
    ops::vessels::show(&ctx, &caller, &key).await.map(Json)
}

pub async fn kill(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<(StatusCode, Json<VesselView>), OpError> {
    let view = ops::vessels::kill(&ctx, &caller, &key).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

pub async fn extend(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Extend>,
) -> Answer<VesselView> {
    ops::vessels::extend(&ctx, &caller, &key, body.by)
        .await
        .map(Json)
}

pub async fn keep(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Keep>,
) -> Answer<VesselView> {
    ops::vessels::keep(&ctx, &caller, &key, body.for_)
        .await
        .map(Json)
}

pub async fn fleet(State(ctx): State<Ctx>, caller: Caller) -> Answer<FleetStatus> {
    ops::fleet::status(&ctx, &caller).await.map(Json)
}

/// `GET /v1/events?after=ID&wait=25&limit=100`.
#[derive(Debug, Deserialize)]
pub struct Poll {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    wait: u64,
    limit: Option<i64>,
}

pub async fn events(
    State(ctx): State<Ctx>,
    caller: Caller,
    Query(q): Query<Poll>,
) -> Answer<EventBatch> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let wait = Duration::from_secs(q.wait.min(55));
    ops::events::poll(&ctx, &caller, q.after, wait, limit)
        .await
        .map(Json)
}

pub async fn drain(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer<HostChange> {
    ops::hosts::set_state(&ctx, &caller, &name, HostState::Draining)
        .await
        .map(Json)
}

pub async fn undrain(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer<HostChange> {
    ops::hosts::set_state(&ctx, &caller, &name, HostState::Active)
        .await
        .map(Json)
}

pub async fn bot_state_get(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(key): Path<String>,
) -> Answer<Value> {
    ops::bot_state::get(&ctx, &caller, &key).await.map(Json)
}

pub async fn bot_state_put(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(value): JsonBody<Value>,
) -> Result<StatusCode, OpError> {
    ops::bot_state::put(&ctx, &caller, &key, &value).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 201 the first time a key is seen, 409 `replayed` after.
pub async fn bot_once(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<StatusCode, OpError> {
    ops::bot_state::once(&ctx, &caller, &key).await?;
    Ok(StatusCode::CREATED)
}

pub async fn audit(
    State(ctx): State<Ctx>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Answer<AuditList> {
    ops::audit::list(&ctx, &caller, &q).await.map(Json)
}

pub async fn users(State(ctx): State<Ctx>, caller: Caller) -> Answer<UserList> {
    ops::people::list(&ctx, &caller).await.map(Json)
}

pub async fn set_user(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(subject): Path<String>,
    JsonBody(body): JsonBody<SetUser>,
) -> Answer<UserView> {
    ops::people::set_identity(&ctx, &caller, &subject, body)
        .await
        .map(Json)
}

pub async fn hibernate(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(vessel): Path<String>,
) -> Answer<VesselView> {
    ops::hibernation::hibernate(&ctx, &caller, &vessel)
        .await
        .map(Json)
}

pub async fn wake(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(vessel): Path<String>,
    JsonBody(body): JsonBody<WakeVessel>,
) -> Answer<VesselView> {
    ops::hibernation::wake(&ctx, &caller, &vessel, body)
        .await
        .map(Json)
}

pub async fn links(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(subject): Path<String>,
) -> Answer<LinkList> {
    ops::links::list(&ctx, &caller, &subject).await.map(Json)
}

pub async fn link(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(subject): Path<String>,
    JsonBody(body): JsonBody<LinkIdentity>,
) -> Answer<IdentityLink> {
    ops::links::link(&ctx, &caller, &subject, body)
        .await
        .map(Json)
}

pub async fn unlink(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path((subject, issuer, identity)): Path<(String, String, String)>,
) -> Result<StatusCode, OpError> {
    ops::links::unlink(&ctx, &caller, &subject, &issuer, &identity).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_limits(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path((subject, queue)): Path<(String, String)>,
    JsonBody(body): JsonBody<SetLimits>,
) -> Answer<Limits> {
    ops::line::set_limits(&ctx, &caller, &subject, &queue, body)
        .await
        .map(Json)
}

pub async fn line(State(ctx): State<Ctx>, caller: Caller) -> Answer<Line> {
    ops::line::show(&ctx, &caller).await.map(Json)
}

pub async fn to_front(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(key): Path<String>,
) -> Answer<VesselView> {
    let id = Uuid::parse_str(&key)
        .map_err(|_| OpError::invalid("vessel", "give the waiting request's id"))?;
    ops::line::to_front(&ctx, &caller, id).await.map(Json)
}
