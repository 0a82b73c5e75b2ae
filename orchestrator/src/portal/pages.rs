//! The researcher's pages: My vessels (with Extend, Keep, Kill) and New
//! vessel, and the checks every page and form post shares. Every action
//! calls the operation (`crate::ops`) the API calls, as the session's
//! caller, so the portal can do no more than the same person could over
//! `/v1`, and is refused in the same words.

use std::collections::HashMap;
use std::future::Future;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use vessel_api::grammar;
use vessel_api::vessels::{CreateVessel, ListQuery, VesselView};
use vessel_api::VesselState;

use super::session::{self, Signed};
use super::view::{action_form, csrf, live_page, page, state_badge, Button, Nav};
use crate::api::AppState;
use crate::ops::{self, Action, Caller, OpError};
use crate::store::audit::SOURCE;

pub(super) type Fields = Form<HashMap<String, String>>;

pub(super) fn nav(s: &Signed) -> Nav<'_> {
    // The unix name where the token has one: an issuer's `sub` is often
    // an opaque id nobody recognises.
    let caller = &s.session.caller;
    Nav {
        subject: caller
            .unix_name
            .as_ref()
            .map_or(caller.subject.as_str(), |u| u.as_str()),
        admin: s.session.caller.may(Action::DrainHost),
        csrf: &s.session.csrf,
    }
}

/// An API refusal as a page, with the API's status and words.
pub(super) fn refusal(s: Option<&Signed>, e: OpError) -> Response {
    let status = StatusCode::from_u16(e.code().status()).unwrap_or(StatusCode::BAD_REQUEST);
    let text = e.to_string();
    let n = s.map(nav);
    let body = html! { p.error role="alert" { (text) } p { a href="/" { "Back to my vessels" } } };
    (status, page("Not done", n.as_ref(), body)).into_response()
}

/// The refusal of a form post whose CSRF token is missing or wrong, before
/// anything else runs.
pub(super) fn csrf_refused(s: &Signed, form: &HashMap<String, String>) -> Option<Response> {
    match form.get("csrf") {
        Some(t) if session::same(t, &s.session.csrf) => None,
        _ => Some(refusal(
            Some(s),
            OpError::Forbidden(
                "the form is stale or forged (no valid CSRF token); reload the page and try again"
                    .into(),
            ),
        )),
    }
}

/// What destroys asks for a ticked box; the form's checkbox is `required`,
/// and this is the server's half for browsers that skip that.
pub(super) fn confirmed(form: &HashMap<String, String>) -> Result<(), OpError> {
    if form.contains_key("confirm") {
        Ok(())
    } else {
        Err(OpError::invalid("confirm", "tick the box to confirm"))
    }
}

/// A form post's one shape: the CSRF token, then `check` (a confirm box,
/// a field), then the operation as the signed-in person (which checks its
/// permission); back to `back` when done, the operation's words when
/// refused.
pub(super) async fn act<Fut>(
    s: &Signed,
    form: &HashMap<String, String>,
    check: Result<(), OpError>,
    back: &str,
    call: impl FnOnce(Caller) -> Fut,
) -> Response
where
    Fut: Future<Output = Result<(), OpError>>,
{
    if let Some(r) = csrf_refused(s, form) {
        return r;
    }
    // Audited as the person, via the portal, from the browser's address.
    let done = match check {
        Ok(()) => {
            SOURCE
                .scope(s.source(), call(s.session.caller.clone()))
                .await
        }
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => Redirect::to(back).into_response(),
        Err(e) => refusal(Some(s), e),
    }
}

pub(super) fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    duration((now - then).num_seconds())
}

/// Seconds in the largest unit that reads well: `90s`, `12m`, `5h`, `3d`.
pub(super) fn duration(secs: i64) -> String {
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

/// The idle clock in words: how long it has been idle, and what follows.
fn idle_words(v: &VesselView, now: DateTime<Utc>) -> Option<String> {
    let idle = v.idle.as_ref()?;
    if let Some(until) = idle.kept_until.filter(|u| *u > now) {
        return Some(format!("kept until {}", until.format("%Y-%m-%d %H:%M UTC")));
    }
    let mut words = if idle.idle_secs == 0 {
        "busy".to_string()
    } else {
        format!("idle {} (work time)", duration(idle.idle_secs as i64))
    };
    if idle.warned_at.is_some() {
        words.push_str(" — warned: press Keep or it will be reclaimed");
    }
    Some(words)
}

fn vessel_card(v: &VesselView, token: &str, now: DateTime<Utc>) -> Markup {
    let id = v.id.to_string();
    let act = |what: &str| format!("/vessels/{id}/{what}");
    html! {
        section.card id={ "v-" (id) } data-state=(v.state.as_str()) {
            h2 { (v.name.as_str()) " " (state_badge(v.state.as_str())) }
            table {
                tr { th { "Queue" } td { (v.queue.as_str()) } th { "Host" } td { (v.host.as_deref().unwrap_or("—")) } }
                tr { th { "GPUs" } td { (v.gpus) } th { "CPUs / memory" } td { (v.cpus) " / " (v.memory.to_string()) } }
                tr { th { "Age" } td { (ago(v.created_at, now)) } th { "Expires" } td { (v.expires_at.format("%Y-%m-%d %H:%M UTC")) " (in " (ago(now, v.expires_at)) ")" } }
                @if let Some(idle) = idle_words(v, now) {
                    tr { th { "Idle" } td colspan="3" { (idle) } }
                }
                @if let Some(disk) = &v.disk {
                    tr { th { "Disk" } td colspan="3" { (disk.summary()) } }
                }
            }
            // Why it waits is the line's place below; why it ended or
            // failed is the reason (a placed vessel keeps its last reason
            // from the line in the API, which says nothing now).
            @if let Some(reason) = v.reason.as_ref().filter(|_| !v.state.is_live()) { p.muted { (reason) } }
            @if let Some(place) = &v.line {
                p.place { "Waiting: " strong { (place.position) " of " (place.of) } " — " (place.reason) }
            }
            @if let Some(ssh) = &v.ssh {
                (copyable(&format!("ssh-{id}"), "SSH config", &ssh.config))
                (copyable(&format!("kh-{id}"), "known_hosts line", &ssh.known_hosts))
                p {
                    a href=(ssh.vscode_url) { "Open in VS Code" }
                    @if let Some(j) = &ssh.jupyter_url {
                        " · " a href=(j) { "Open Jupyter" }
                        " (after " code { "vessel jupyter " (v.name.as_str()) } ": it listens on the vessel's loopback)"
                    }
                }
            }
            @if v.state.is_live() {
                form.inline method="post" action=(act("extend")) {
                    (csrf(token))
                    label.inline for={ "by-" (id) } { "Extend by " }
                    select id={ "by-" (id) } name="by" { option { "1d" } option { "4h" } option { "2d" } }
                    " " button.quiet type="submit" { "Extend" }
                }
                " "
                @if v.state == VesselState::Running {
                    (action_form(&act("keep"), token, "Keep", Button::Quiet, None))
                    " "
                    @let sleep = format!("Yes: its processes end, its files are kept ({})", v.name.as_str());
                    (action_form(&act("hibernate"), token, "Hibernate", Button::Quiet, Some(&sleep)))
                    " "
                }
                @let what = if v.line.is_some() { "Cancel" } else { "Kill" };
                @let confirm = format!("Yes, {} {}", what.to_lowercase(), v.name.as_str());
                (action_form(&act("kill"), token, what, Button::Danger, Some(&confirm)))
            }
            @if v.state == VesselState::Hibernated {
                p.muted {
                    "Hibernated" @if let Some(at) = v.hibernated_at { " since " (at.format("%Y-%m-%d %H:%M UTC")) }
                    ": its GPUs went back to the line; every file, its address and its host key are kept."
                }
                (action_form(&act("wake"), token, "Wake", Button::Quiet, None))
                " "
                @let confirm = format!("Yes, kill {} and its files outside the home", v.name.as_str());
                (action_form(&act("kill"), token, "Kill", Button::Danger, Some(&confirm)))
            }
        }
    }
}

pub async fn my_vessels(State(state): State<AppState>, s: Signed) -> Response {
    let caller = &s.session.caller;
    let list = match ops::vessels::list(&state.ctx, caller, ListQuery::default()).await {
        Ok(l) => l.vessels,
        Err(e) => return refusal(Some(&s), e),
    };
    let now = state.ctx.clock.now();
    let body = html! {
        @if list.is_empty() {
            p.card { "You have no vessels. " a href="/new" { "Start one" } "." }
        }
        @for v in &list { (vessel_card(v, &s.session.csrf, now)) }
    };
    live_page("My vessels", Some(&nav(&s)), body).into_response()
}

const FORM_FIELDS: &[(&str, &str, &str)] = &[
    ("gpu", "GPUs", "number"),
    ("cpu", "CPUs", "number"),
    ("mem", "Memory (e.g. 64G)", "text"),
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
    // Only the totals: the GPU grid of every host is not read here.
    let totals = ops::fleet::totals(&state.ctx, &s.session.caller).await.ok();
    let chosen = values.get("queue").map(String::as_str).unwrap_or_default();
    let field_error = |key: &str| {
        html! { @if let Some(e) = errors.get(key) { p.field-error id={ "e-" (key) } role="alert" { (e) } } }
    };
    let body = html! {
        @if let Some(g) = general { p.error role="alert" { (g) } }
        form.card method="post" action="/new" novalidate {
            (csrf(&s.session.csrf))
            label for="f-queue" { "Queue" }
            select id="f-queue" name="queue" aria-describedby="e-queue" {
                @for (name, q) in &state.ctx.config.queues {
                    @let t = totals.as_ref().and_then(|f| f.iter().find(|(k, _)| k.as_str() == name).map(|(_, t)| t));
                    option value=(name) selected[name == chosen] {
                        (name) " — " (q.gpus) " GPU default"
                        @if let Some(t) = t { ", " (t.gpus_free) " free, " (t.waiting) " waiting" }
                    }
                }
            }
            (field_error("queue"))
            (image_choice(state, values))
            (field_error("image"))
            @for (key, label, kind) in FORM_FIELDS {
                label for={ "f-" (key) } { (label) }
                input id={ "f-" (key) } name=(key) type=(kind) value=(values.get(*key).map(String::as_str).unwrap_or_default()) aria-describedby={ "e-" (key) };
                (field_error(key))
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

/// The images each queue allows, as a choice: the queue's default unless
/// another is picked; a `repo:*` entry (any tag of one repository) is
/// typed into the tag field instead.
fn image_choice(state: &AppState, values: &HashMap<String, String>) -> Markup {
    let chosen = values.get("image").map(String::as_str).unwrap_or_default();
    let queues = &state.ctx.config.queues;
    let repos: Vec<&str> = queues
        .values()
        .flat_map(|q| q.images.iter())
        .filter_map(|i| i.strip_suffix(":*"))
        .collect();
    html! {
        label for="f-image" { "Image" }
        select id="f-image" name="image" aria-describedby="e-image" {
            option value="" { "the queue's default" }
            @for (name, q) in queues {
                optgroup label={ "Queue " (name) } {
                    @for image in ops::plan::images_of(&q.image, &q.images).iter().filter(|i| !i.ends_with(":*")) {
                        option value=(image) selected[image == chosen] { (image) }
                    }
                }
            }
        }
        @if !repos.is_empty() {
            label for="f-image_tag" { "Or a tag of " (repos.join(", ")) }
            input id="f-image_tag" name="image_tag" type="text" placeholder={ (repos[0]) ":TAG" } value=(values.get("image_tag").map(String::as_str).unwrap_or_default()) aria-describedby="e-image";
        }
    }
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
    if let Err(e) = s.session.caller.require(Action::CreateVessel) {
        return refusal(Some(&s), e);
    }
    // Field by field through the grammar Slack and the CLI use, so each
    // error has the same words and sits next to its own field.
    let mut request = CreateVessel::default();
    let mut errors = HashMap::new();
    let filled = |key: &str| form.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    for key in ["queue", "image"]
        .into_iter()
        .chain(FORM_FIELDS.iter().map(|f| f.0))
    {
        // A typed tag wins over the list's choice.
        let value = match key {
            "image" => filled("image_tag").or_else(|| filled("image")),
            _ => filled(key),
        };
        let Some(value) = value else {
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
    let created = SOURCE.scope(
        s.source(),
        ops::create::create(&state.ctx, &s.session.caller, request),
    );
    match created.await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(OpError::Invalid {
            field: Some(f),
            message,
        }) => {
            errors.insert(form_key(&f).to_string(), message);
            new_page(&state, &s, &form, &errors, None).await
        }
        Err(e @ (OpError::Invalid { .. } | OpError::Conflict { .. })) => {
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
    act(&s, &form, confirmed(&form), "/", |caller| async move {
        ops::vessels::kill(&state.ctx, &caller, &id)
            .await
            .map(|_| ())
    })
    .await
}

pub async fn extend(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Fields,
) -> Response {
    let (check, by) = match grammar::parse_span(form.get("by").map(String::as_str).unwrap_or("1d"))
    {
        Ok(by) => (Ok(()), Some(by)),
        Err(e) => (Err(OpError::invalid("by", e.to_string())), None),
    };
    act(&s, &form, check, "/", |caller| async move {
        let by = by.ok_or_else(|| OpError::bug("extend without a parsed span"))?;
        ops::vessels::extend(&state.ctx, &caller, &id, by)
            .await
            .map(|_| ())
    })
    .await
}

/// Hibernate: confirmed, since its processes end.
pub async fn hibernate(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Fields,
) -> Response {
    act(&s, &form, confirmed(&form), "/", |caller| async move {
        ops::hibernation::hibernate(&state.ctx, &caller, &id)
            .await
            .map(|_| ())
    })
    .await
}

/// Wake: back in line for the host its disk is on.
pub async fn wake(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Fields,
) -> Response {
    act(&s, &form, Ok(()), "/", |caller| async move {
        ops::hibernation::wake(&state.ctx, &caller, &id, Default::default())
            .await
            .map(|_| ())
    })
    .await
}

/// Keep: the undertaker leaves it alone for the queue's keep span.
pub async fn keep(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Fields,
) -> Response {
    act(&s, &form, Ok(()), "/", |caller| async move {
        ops::vessels::keep(&state.ctx, &caller, &id, None)
            .await
            .map(|_| ())
    })
    .await
}
