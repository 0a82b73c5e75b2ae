//! The portal's pages and form posts. Every action checks its `ROUTES` row
//! with the session's caller and then calls the API's own handler, so the
//! portal can do no more than the same person could over `/v1`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use uuid::Uuid;
use vessel_api::fleet::HostState;
use vessel_api::grammar;
use vessel_api::vessels::{CreateVessel, Extend, ListQuery, VesselView};

use super::session::{self, Signed, COOKIE, PRE_COOKIE};
use super::view::{csrf, live_page, page, state_badge, Nav};
use super::Sessions;
use crate::api::auth::{perm, Caller};
use crate::api::error::ApiError;
use crate::api::{fleet as api_fleet, hosts, line, vessels, AppState, JsonBody, ROUTES};
use crate::domain::UnixName;

type Fields = Form<HashMap<String, String>>;

/// The API's check for `method path`, with the session's caller: the same
/// row of `ROUTES` the bearer-token middleware reads.
fn allowed(caller: &Caller, method: &str, path: &str) -> Result<(), ApiError> {
    let route = ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .ok_or_else(|| ApiError::bug(format!("{method} {path} has no row in ROUTES")))?;
    if route.perms.iter().any(|p| caller.can(p)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this needs one of: {}",
            route.perms.join(", ")
        )))
    }
}

fn nav(s: &Signed) -> Nav<'_> {
    // The unix name where the token has one: an issuer's `sub` is often
    // an opaque id nobody recognises.
    let caller = &s.session.caller;
    Nav {
        subject: caller
            .unix_name
            .as_ref()
            .map_or(caller.subject.as_str(), |u| u.as_str()),
        admin: s.session.caller.can(perm::FLEET_MANAGE),
        csrf: &s.session.csrf,
    }
}

/// An API refusal as a page, with the API's status and words.
pub(super) fn refusal(s: Option<&Signed>, e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.code().status()).unwrap_or(StatusCode::BAD_REQUEST);
    let text = e.to_string();
    let n = s.map(nav);
    let body = html! { p.error role="alert" { (text) } p { a href="/" { "Back to my vessels" } } };
    (status, page("Not done", n.as_ref(), body)).into_response()
}

/// The refusal of a form post whose CSRF token is missing or wrong, before
/// anything else runs.
fn csrf_refused(s: &Signed, form: &HashMap<String, String>) -> Option<Response> {
    match form.get("csrf") {
        Some(t) if session::same(t, &s.session.csrf) => None,
        _ => Some(refusal(
            Some(s),
            ApiError::Forbidden(
                "the form is stale or forged (no valid CSRF token); reload the page and try again"
                    .into(),
            ),
        )),
    }
}

fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    let (n, unit) = if secs.abs() < 120 {
        (secs, "s")
    } else if secs.abs() < 7200 {
        (secs / 60, "m")
    } else if secs.abs() < 172_800 {
        (secs / 3600, "h")
    } else {
        (secs / 86400, "d")
    };
    format!("{n}{unit}")
}

fn copyable(id: &str, label: &str, text: &str) -> Markup {
    html! {
        div {
            strong { (label) }
            " "
            button.quiet type="button" data-copy=(id) aria-label={ "Copy " (label) } { "Copy" }
            pre id=(id) { (text) }
        }
    }
}

fn vessel_card(v: &VesselView, token: &str, now: DateTime<Utc>) -> Markup {
    let id = v.id.to_string();
    html! {
        section.card id={ "v-" (id) } data-state=(v.state.as_str()) {
            h2 { (v.name.as_str()) " " (state_badge(v.state.as_str())) }
            table {
                tr { th { "Queue" } td { (v.queue.as_str()) } th { "Host" } td { (v.host.as_deref().unwrap_or("—")) } }
                tr { th { "GPUs" } td { (v.gpus) } th { "CPUs / memory" } td { (v.cpus) " / " (v.memory.to_string()) } }
                tr { th { "Age" } td { (ago(v.created_at, now)) } th { "Expires" } td { (v.expires_at.format("%Y-%m-%d %H:%M UTC")) " (in " (ago(now, v.expires_at)) ")" } }
            }
            @if let Some(reason) = &v.reason { p.muted { (reason) } }
            @if let Some(place) = &v.line {
                p.place { "Waiting: " strong { (place.position) " of " (place.of) } " — " (place.reason) }
            }
            @if let Some(ssh) = &v.ssh {
                (copyable(&format!("ssh-{id}"), "SSH config", &ssh.config))
                (copyable(&format!("kh-{id}"), "known_hosts line", &ssh.known_hosts))
                p {
                    a href=(ssh.vscode_url) { "Open in VS Code" }
                    @if let Some(j) = &ssh.jupyter_url { " · " a href=(j) { "Open Jupyter" } }
                }
            }
            @if v.state.is_live() {
                form.inline method="post" action={ "/vessels/" (id) "/extend" } {
                    (csrf(token))
                    label.inline for={ "by-" (id) } { "Extend by " }
                    select id={ "by-" (id) } name="by" { option { "1d" } option { "4h" } option { "2d" } }
                    " " button.quiet type="submit" { "Extend" }
                }
                " "
                form.inline method="post" action={ "/vessels/" (id) "/kill" } {
                    (csrf(token))
                    @let what = if v.line.is_some() { "Cancel" } else { "Kill" };
                    label.inline { input type="checkbox" name="confirm" required; " Yes, " (what.to_lowercase()) " " (v.name.as_str()) }
                    " " button.danger type="submit" { (what) }
                }
            }
        }
    }
}

pub async fn my_vessels(State(state): State<AppState>, s: Signed) -> Response {
    let caller = &s.session.caller;
    let list = match allowed(caller, "GET", "/v1/vessels") {
        Ok(()) => {
            vessels::list(
                State(state.clone()),
                caller.clone(),
                Query(ListQuery::default()),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let list = match list {
        Ok(Json(l)) => l.vessels,
        Err(e) => return refusal(Some(&s), e),
    };
    // The list leaves out where a waiting one stands; `show` tells it.
    let mut shown = Vec::with_capacity(list.len());
    for v in list {
        if v.state.as_str() == "pending" {
            if let Ok(Json(full)) =
                vessels::show(State(state.clone()), caller.clone(), Path(v.id.to_string())).await
            {
                shown.push(full);
                continue;
            }
        }
        shown.push(v);
    }
    let now = state.clock.now();
    let body = html! {
        @if shown.is_empty() {
            p.card { "You have no vessels. " a href="/new" { "Start one" } "." }
        }
        @for v in &shown { (vessel_card(v, &s.session.csrf, now)) }
    };
    live_page("My vessels", Some(&nav(&s)), body).into_response()
}

const FORM_FIELDS: &[(&str, &str, &str)] = &[
    ("gpu", "GPUs", "number"),
    ("cpu", "CPUs", "number"),
    ("mem", "Memory (e.g. 64G)", "text"),
    ("image", "Image", "text"),
    ("name", "Name", "text"),
    ("for", "Lifetime (e.g. 2d, 24h)", "text"),
];

async fn new_page(
    state: &AppState,
    s: &Signed,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
    general: Option<String>,
) -> Response {
    let fleet = api_fleet::status(State(state.clone()))
        .await
        .ok()
        .map(|Json(f)| f);
    let chosen = values.get("queue").map(String::as_str).unwrap_or_default();
    let body = html! {
        @if let Some(g) = general { p.error role="alert" { (g) } }
        form.card method="post" action="/new" novalidate {
            (csrf(&s.session.csrf))
            label for="f-queue" { "Queue" }
            select id="f-queue" name="queue" aria-describedby="e-queue" {
                @for (name, q) in &state.config.queues {
                    @let totals = fleet.as_ref().and_then(|f| f.queues.iter().find(|(k, _)| k.as_str() == name).map(|(_, t)| t.clone()));
                    option value=(name) selected[name == chosen] {
                        (name) " — " (q.gpus) " GPU default"
                        @if let Some(t) = totals { ", " (t.gpus_free) " free, " (t.waiting) " waiting" }
                    }
                }
            }
            @if let Some(e) = errors.get("queue") { p.field-error id="e-queue" { (e) } }
            @for (key, label, kind) in FORM_FIELDS {
                label for={ "f-" (key) } { (label) }
                input id={ "f-" (key) } name=(key) type=(kind) value=(values.get(*key).map(String::as_str).unwrap_or_default()) aria-describedby={ "e-" (key) };
                @if let Some(e) = errors.get(*key) { p.field-error id={ "e-" (key) } role="alert" { (e) } }
            }
            p.muted { "Empty fields take the queue's defaults." }
            label { input type="checkbox" name="no_wait" value="1"; " Don't wait in line if nothing fits now" }
            p { button type="submit" { "Create vessel" } }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, page("New vessel", Some(&nav(s)), body)).into_response()
}

pub async fn new_form(State(state): State<AppState>, s: Signed) -> Response {
    new_page(&state, &s, &HashMap::new(), &HashMap::new(), None).await
}

/// The API's name for a field, as the form names it.
fn form_key(api_field: &str) -> &str {
    match api_field {
        "gpus" => "gpu",
        "cpus" => "cpu",
        "memory" => "mem",
        "lifetime" => "for",
        other => other,
    }
}

pub async fn new_submit(State(state): State<AppState>, s: Signed, Form(form): Fields) -> Response {
    if let Some(r) = csrf_refused(&s, &form) {
        return r;
    }
    if let Err(e) = allowed(&s.session.caller, "POST", "/v1/vessels") {
        return refusal(Some(&s), e);
    }
    // Field by field through the grammar Slack and the CLI use, so each
    // error has the same words and sits next to its own field.
    let mut request = CreateVessel::default();
    let mut errors = HashMap::new();
    for key in std::iter::once("queue").chain(FORM_FIELDS.iter().map(|f| f.0)) {
        let Some(value) = form.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
            continue;
        };
        if let Err(e) = grammar::set_option(&mut request, key, value) {
            errors.insert(key.to_string(), e.to_string());
        }
    }
    if form.contains_key("no_wait") {
        request.wait = Some(false);
    }
    if !errors.is_empty() {
        return new_page(&state, &s, &form, &errors, None).await;
    }
    match vessels::create(
        State(state.clone()),
        s.session.caller.clone(),
        JsonBody(request),
    )
    .await
    {
        Ok(_) => Redirect::to("/").into_response(),
        Err(ApiError::Invalid {
            field: Some(f),
            message,
        }) => {
            errors.insert(form_key(&f).to_string(), message);
            new_page(&state, &s, &form, &errors, None).await
        }
        Err(e @ (ApiError::Invalid { .. } | ApiError::Conflict { .. })) => {
            new_page(&state, &s, &form, &errors, Some(e.to_string())).await
        }
        Err(e) => refusal(Some(&s), e),
    }
}

pub async fn kill(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Fields,
) -> Response {
    if let Some(r) = csrf_refused(&s, &form) {
        return r;
    }
    if !form.contains_key("confirm") {
        return refusal(
            Some(&s),
            ApiError::invalid("confirm", "tick the box to confirm"),
        );
    }
    let done = match allowed(&s.session.caller, "DELETE", "/v1/vessels/{vessel}") {
        Ok(()) => vessels::kill(State(state), s.session.caller.clone(), Path(id))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => refusal(Some(&s), e),
    }
}

pub async fn extend(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Fields,
) -> Response {
    if let Some(r) = csrf_refused(&s, &form) {
        return r;
    }
    let by = match grammar::parse_span(form.get("by").map(String::as_str).unwrap_or("1d")) {
        Ok(by) => by,
        Err(e) => return refusal(Some(&s), ApiError::invalid("by", e.to_string())),
    };
    let done = match allowed(&s.session.caller, "POST", "/v1/vessels/{vessel}/extend") {
        Ok(()) => vessels::extend(
            State(state),
            s.session.caller.clone(),
            Path(id),
            JsonBody(Extend { by }),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => refusal(Some(&s), e),
    }
}

pub async fn fleet(State(state): State<AppState>, s: Signed) -> Response {
    if let Err(e) = allowed(&s.session.caller, "GET", "/v1/fleet") {
        return refusal(Some(&s), e);
    }
    let f = match api_fleet::status(State(state)).await {
        Ok(Json(f)) => f,
        Err(e) => return refusal(Some(&s), e),
    };
    let body = html! {
        section.card {
            h2 { "Queues" }
            table {
                tr { th { "Queue" } th { "Hosts online" } th { "GPUs free / all" } th { "CPUs free" } th { "Waiting" } }
                @for (name, q) in &f.queues {
                    tr { td { (name.as_str()) } td { (q.hosts_online) " / " (q.hosts) } td { (q.gpus_free) " / " (q.gpus) } td { (q.cores_free) } td { (q.waiting) } }
                }
            }
        }
        p.legend { span { "■ free" } span { "■ in use" } span { "■ drained" } span { "■ lost" } }
        section.card {
            h2 { "Hosts" }
            table {
                tr { th { "Host" } th { "Queue" } th { "State" } th { "GPUs" } }
                @for h in &f.hosts {
                    tr id={ "h-" (h.name) } {
                        td { (h.name) }
                        td { (h.queue.as_str()) }
                        td {
                            @if !h.online { "lost" } @else if h.state == HostState::Draining { "drained" } @else { "active" }
                        }
                        td {
                            div.grid {
                                @for g in &h.gpus {
                                    @let (class, word) = if !h.online { ("g-lost", "lost") }
                                        else if g.vessel.is_some() { ("g-used", "in use") }
                                        else if h.state == HostState::Draining { ("g-drained", "drained") }
                                        else { ("g-free", "free") };
                                    div class={ "gpu " (class) } data-gpu=(g.uuid) title=(g.model) {
                                        "#" (g.index) " " (word)
                                        @if let Some(o) = &g.owner { br; (o) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    live_page("Fleet", Some(&nav(&s)), body).into_response()
}

pub async fn admin(State(state): State<AppState>, s: Signed) -> Response {
    let caller = &s.session.caller;
    if let Err(e) = allowed(caller, "POST", "/v1/hosts/{name}/drain") {
        return refusal(Some(&s), e);
    }
    let f = match api_fleet::status(State(state.clone())).await {
        Ok(Json(f)) => f,
        Err(e) => return refusal(Some(&s), e),
    };
    let l = match line::show(State(state)).await {
        Ok(Json(l)) => l,
        Err(e) => return refusal(Some(&s), e),
    };
    let token = &s.session.csrf;
    let body = html! {
        section.card {
            h2 { "Hosts" }
            table {
                tr { th { "Host" } th { "Queue" } th { "State" } th { "Vessels" } th { "Action" } }
                @for h in &f.hosts {
                    tr {
                        td { (h.name) } td { (h.queue.as_str()) }
                        td { (h.state.as_str()) @if !h.online { " (offline)" } }
                        td { (h.vessels) }
                        td {
                            @let action = if h.state == HostState::Draining { "undrain" } else { "drain" };
                            form method="post" action={ "/admin/hosts/" (h.name) "/" (action) } {
                                (csrf(token))
                                button.quiet type="submit" aria-label={ (action) " " (h.name) } { (action) }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Waiting line" }
            @if l.queues.is_empty() { p.muted { "Nobody is waiting." } }
            @for (q, entries) in &l.queues {
                h3 { (q.as_str()) }
                table {
                    tr { th { "#" } th { "Request" } th { "Owner" } th { "Asks" } th { "Why" } th { "Action" } }
                    @for e in entries {
                        tr {
                            td { (e.place.position) } td { (e.name.as_str()) } td { (e.owner) }
                            td { (e.gpus) " GPU, " (e.cpus) " CPU, " (e.memory.to_string()) }
                            td { (e.place.reason) }
                            td {
                                form.inline method="post" action={ "/admin/line/" (e.id) "/front" } {
                                    (csrf(token)) button.quiet type="submit" { "Move to front" }
                                }
                                " "
                                form.inline method="post" action={ "/admin/line/" (e.id) "/cancel" } {
                                    (csrf(token))
                                    label.inline { input type="checkbox" name="confirm" required; " sure" }
                                    " " button.danger type="submit" { "Cancel" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    live_page("Admin", Some(&nav(&s)), body).into_response()
}

pub async fn host_action(
    State(state): State<AppState>,
    s: Signed,
    Path((name, action)): Path<(String, String)>,
    Form(form): Fields,
) -> Response {
    if let Some(r) = csrf_refused(&s, &form) {
        return r;
    }
    let caller = s.session.caller.clone();
    let done = match action.as_str() {
        "drain" => match allowed(&caller, "POST", "/v1/hosts/{name}/drain") {
            Ok(()) => hosts::drain(State(state), caller, Path(name))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        },
        "undrain" => match allowed(&caller, "POST", "/v1/hosts/{name}/undrain") {
            Ok(()) => hosts::undrain(State(state), caller, Path(name))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        },
        _ => Err(ApiError::NotFound(format!("no action `{action}`"))),
    };
    match done {
        Ok(()) => Redirect::to("/admin").into_response(),
        Err(e) => refusal(Some(&s), e),
    }
}

pub async fn line_front(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<Uuid>,
    Form(form): Fields,
) -> Response {
    if let Some(r) = csrf_refused(&s, &form) {
        return r;
    }
    let done = match allowed(&s.session.caller, "POST", "/v1/line/{vessel}/front") {
        Ok(()) => line::to_front(State(state), s.session.caller.clone(), Path(id.to_string()))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => Redirect::to("/admin").into_response(),
        Err(e) => refusal(Some(&s), e),
    }
}

pub async fn line_cancel(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<Uuid>,
    Form(form): Fields,
) -> Response {
    if let Some(r) = csrf_refused(&s, &form) {
        return r;
    }
    if !form.contains_key("confirm") {
        return refusal(
            Some(&s),
            ApiError::invalid("confirm", "tick the box to confirm"),
        );
    }
    // Cancelling someone else's request is an admin's kill of it.
    let done = match allowed(&s.session.caller, "DELETE", "/v1/vessels/{vessel}") {
        Ok(()) => vessels::kill(State(state), s.session.caller.clone(), Path(id.to_string()))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => Redirect::to("/admin").into_response(),
        Err(e) => refusal(Some(&s), e),
    }
}

pub async fn sign_in_page(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
) -> Response {
    let pre = session::token();
    let body = html! {
        @if let Some(o) = &state.config.portal.oidc {
            p.card { a.button href="/sign-in/oidc" { "Sign in with " (o.issuer) } }
        }
        @if state.config.portal.dev_sign_in {
            form.card method="post" action="/sign-in/dev" {
                p.muted { "Dev sign-in (loopback only): any subject, no password. For the local quick start." }
                input type="hidden" name="csrf" value=(pre);
                label for="f-subject" { "Subject" }
                input id="f-subject" name="subject" required autocomplete="username";
                p { button type="submit" { "Sign in" } }
            }
        }
        @if state.config.portal.oidc.is_none() && !state.config.portal.dev_sign_in {
            p.card { "No sign-in is set up for the portal: see `[portal]` in the orchestrator's config." }
        }
    };
    let cookie = sessions.cookie(PRE_COOKIE, &pre, std::time::Duration::from_secs(600));
    ([(header::SET_COOKIE, cookie)], page("Sign in", None, body)).into_response()
}

pub async fn dev_sign_in(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let refuse = |why: &str| refusal(None, ApiError::Forbidden(why.to_string()));
    if !state.config.portal.dev_sign_in {
        return refuse("the dev sign-in is off (`[portal] dev_sign_in`)");
    }
    if !peer.is_some_and(|Extension(ConnectInfo(p))| p.ip().is_loopback()) {
        return refuse("the dev sign-in answers only on loopback");
    }
    let pre = session::cookie_value(&headers, PRE_COOKIE);
    if !matches!((pre, form.get("csrf")), (Some(a), Some(b)) if session::same(&a, b)) {
        return refuse(
            "the form is stale or forged (no valid CSRF token); reload the page and try again",
        );
    }
    let Some(subject) = form
        .get("subject")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    else {
        return refusal(None, ApiError::invalid("subject", "give a subject"));
    };
    // Like a token without a unix_name claim: the name is derived from the
    // subject where it can be.
    let unix_name = UnixName::parse(subject).ok();
    let perms = state.verifier.role_of(subject);
    let caller = Caller::from_session(subject.to_string(), perms, unix_name, None);
    let (id, ttl) = sessions.start(caller, None);
    (
        [(header::SET_COOKIE, sessions.cookie(COOKIE, &id, ttl))],
        Redirect::to("/"),
    )
        .into_response()
}

pub async fn sign_out(
    Extension(sessions): Extension<Arc<Sessions>>,
    s: Signed,
    Form(form): Fields,
) -> Response {
    if let Some(r) = csrf_refused(&s, &form) {
        return r;
    }
    sessions.end(&s.id);
    (
        [(
            header::SET_COOKIE,
            sessions.cookie(COOKIE, "", std::time::Duration::ZERO),
        )],
        Redirect::to("/sign-in"),
    )
        .into_response()
}
