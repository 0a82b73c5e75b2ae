//! The Admin pages: hosts (drain / undrain) and the waiting line (move to
//! front, cancel); people and their limits per queue; the audit log with
//! filters. Each page calls the operations the API calls, as the signed-in
//! person, so someone without the permission gets the same refusal.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;
use vessel_api::audit::AuditQuery;
use vessel_api::fleet::HostState;
use vessel_api::line::SetLimits;

use super::fleet::PER_PAGE;
use super::pages::{act, confirmed, nav, refusal, Fields};
use super::session::Signed;
use super::view::{action_form, csrf, live_page, page, seg, Button};
use crate::api::AppState;
use crate::ops::{self, Action, OpError};

fn tabs(current: &str) -> Markup {
    html! {
        nav.tabs aria-label="Admin sections" {
            @for (href, label) in [("/admin", "Hosts and line"), ("/admin/users", "People and limits"), ("/admin/audit", "Audit log")] {
                a href=(href) aria-current=[(href == current).then_some("page")] { (label) }
            }
        }
    }
}

/// `?page=` of the hosts table.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    page: Option<usize>,
}

/// Waiting requests shown per queue; the rest are counted.
const LINE_SHOWN: usize = 50;

pub async fn hosts_and_line(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<PageQuery>,
) -> Response {
    let caller = &s.session.caller;
    if let Err(e) = caller.require(Action::DrainHost) {
        return refusal(Some(&s), e);
    }
    let count: u32 = match ops::fleet::totals(&state.ctx, caller).await {
        Ok(t) => t.values().map(|t| t.hosts).sum(),
        Err(e) => return refusal(Some(&s), e),
    };
    let pages = (count as usize).div_ceil(PER_PAGE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let offset = ((page - 1) * PER_PAGE) as i64;
    let hosts =
        match ops::fleet::hosts_page(&state.ctx, caller, None, offset, PER_PAGE as i64).await {
            Ok(h) => h,
            Err(e) => return refusal(Some(&s), e),
        };
    let l = match ops::line::show(&state.ctx, caller).await {
        Ok(l) => l,
        Err(e) => return refusal(Some(&s), e),
    };
    let token = &s.session.csrf;
    let body = html! {
        (tabs("/admin"))
        section.card {
            h2 { "Hosts" }
            table {
                tr { th { "Host" } th { "Queue" } th { "State" } th { "Vessels" } th { "Action" } }
                @for h in &hosts {
                    tr {
                        td { (h.name) } td { (h.queue.as_str()) }
                        td { (h.state.as_str()) @if !h.online { " (offline)" } }
                        td { (h.vessels) }
                        td {
                            @let action = if h.state == HostState::Draining { "undrain" } else { "drain" };
                            (action_form(&format!("/admin/hosts/{}/{action}", seg(&h.name)), token, action, Button::Quiet, None))
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pager aria-label="Pages of hosts" {
                    @if page > 1 { a href={ "/admin?page=" (page - 1) } { "← Previous" } }
                    span { "Page " (page) " of " (pages) " (" (count) " hosts)" }
                    @if page < pages { a href={ "/admin?page=" (page + 1) } { "Next →" } }
                }
            }
        }
        section.card {
            h2 { "Waiting line" }
            @if l.queues.is_empty() { p.muted { "Nobody is waiting." } }
            @for (q, entries) in &l.queues {
                h3 { (q.as_str()) " — " (entries.len()) " waiting" }
                table {
                    tr { th { "#" } th { "Request" } th { "Owner" } th { "Asks" } th { "Why" } th { "Action" } }
                    @for e in entries.iter().take(LINE_SHOWN) {
                        tr {
                            td { (e.place.position) } td { (e.name.as_str()) } td { (e.owner) }
                            td { (e.gpus) " GPU, " (e.cpus) " CPU, " (e.memory.to_string()) }
                            td { (e.place.reason) }
                            td {
                                (action_form(&format!("/admin/line/{}/front", e.id), token, "Move to front", Button::Quiet, None))
                                " "
                                (action_form(&format!("/admin/line/{}/cancel", e.id), token, "Cancel", Button::Danger, Some("sure")))
                            }
                        }
                    }
                }
                @if entries.len() > LINE_SHOWN {
                    p.muted { "and " (entries.len() - LINE_SHOWN) " more behind them (`vessel fleet queue` lists all)." }
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
    let to = match action.as_str() {
        "drain" => HostState::Draining,
        "undrain" => HostState::Active,
        _ => return refusal(Some(&s), OpError::NotFound(format!("no action `{action}`"))),
    };
    act(&s, &form, Ok(()), "/admin", |caller| async move {
        ops::hosts::set_state(&state.ctx, &caller, &name, to)
            .await
            .map(|_| ())
    })
    .await
}

pub async fn line_front(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<Uuid>,
    Form(form): Fields,
) -> Response {
    act(&s, &form, Ok(()), "/admin", |caller| async move {
        ops::line::to_front(&state.ctx, &caller, id)
            .await
            .map(|_| ())
    })
    .await
}

/// Cancelling someone else's request is an admin's kill of it.
pub async fn line_cancel(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<Uuid>,
    Form(form): Fields,
) -> Response {
    act(&s, &form, confirmed(&form), "/admin", |caller| async move {
        ops::vessels::kill(&state.ctx, &caller, &id.to_string())
            .await
            .map(|_| ())
    })
    .await
}

fn limit_text(n: Option<u32>) -> String {
    n.map_or_else(|| "no limit".to_string(), |n| n.to_string())
}

pub async fn people(State(state): State<AppState>, s: Signed) -> Response {
    let list = match ops::people::list(&state.ctx, &s.session.caller).await {
        Ok(l) => l,
        Err(e) => return refusal(Some(&s), e),
    };
    let token = &s.session.csrf;
    let body = html! {
        (tabs("/admin/users"))
        section.card {
            h2 { "People" }
            p.muted { "What each person holds per queue, and the limits on them: the queue's, or an override set here (empty fields go back to the queue's)." }
            table {
                tr { th { "Person" } th { "Holds" } th { "Limits" } }
                @for u in &list.users {
                    tr id={ "u-" (u.unix_name) } {
                        td { strong { (u.unix_name) } br; span.muted { (u.id) " · uid " (u.uid) } }
                        td {
                            @if u.queues.is_empty() { span.muted { "nothing" } }
                            @for q in &u.queues { div { (q.queue) ": " (q.gpus) " GPU, " (q.vessels) " vessel(s)" } }
                        }
                        td {
                            @for q in &u.queues {
                                div {
                                    (q.queue) ": " (limit_text(q.max_gpus)) " GPUs, " (limit_text(q.max_vessels)) " vessels"
                                    @if q.overridden { " (override)" }
                                }
                            }
                            (limits_form(&state, &u.id, &u.unix_name, token))
                        }
                    }
                }
            }
        }
    };
    page("People and limits", Some(&nav(&s)), body).into_response()
}

fn limits_form(state: &AppState, subject: &str, name: &str, token: &str) -> Markup {
    let id = |field: &str| format!("{field}-{name}");
    html! {
        form.filters method="post" action={ "/admin/users/" (seg(subject)) "/limits" } {
            (csrf(token))
            div {
                label for=(id("q")) { "Queue" }
                select id=(id("q")) name="queue" { @for q in state.ctx.config.queues.keys() { option { (q) } } }
            }
            div { label for=(id("g")) { "Max GPUs" } input id=(id("g")) name="max_gpus" type="number" min="0" size="4"; }
            div { label for=(id("v")) { "Max vessels" } input id=(id("v")) name="max_vessels" type="number" min="0" size="4"; }
            button.quiet type="submit" aria-label={ "Set limits for " (name) } { "Set" }
        }
    }
}

/// `max_gpus`, `max_vessels`: a number, or empty for the queue's own.
fn limit_field(
    form: &std::collections::HashMap<String, String>,
    key: &str,
) -> Result<Option<u32>, OpError> {
    match form.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<u32>().map(Some).map_err(|_| {
            OpError::invalid(key, format!("`{v}` is not a whole number of 0 or more"))
        }),
    }
}

pub async fn set_limits(
    State(state): State<AppState>,
    s: Signed,
    Path(subject): Path<String>,
    Form(form): Fields,
) -> Response {
    let body = limit_field(&form, "max_gpus").and_then(|g| {
        Ok(SetLimits {
            max_gpus: g,
            max_vessels: limit_field(&form, "max_vessels")?,
        })
    });
    let queue = form.get("queue").cloned().unwrap_or_default();
    let (check, body) = match body {
        Ok(b) => (Ok(()), Some(b)),
        Err(e) => (Err(e), None),
    };
    act(&s, &form, check, "/admin/users", |caller| async move {
        let body = body.ok_or_else(|| OpError::bug("limits without a parsed body"))?;
        ops::line::set_limits(&state.ctx, &caller, &subject, &queue, body)
            .await
            .map(|_| ())
    })
    .await
}

pub async fn audit(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<AuditQuery>,
) -> Response {
    // Empty fields from the form mean "any".
    let some = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let query = AuditQuery {
        actor: some(&q.actor),
        target: some(&q.target),
        action: some(&q.action),
        outcome: some(&q.outcome),
        limit: Some(q.limit.unwrap_or(100)),
    };
    let list = match ops::audit::list(&state.ctx, &s.session.caller, &query).await {
        Ok(l) => l,
        Err(e) => return refusal(Some(&s), e),
    };
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        (tabs("/admin/audit"))
        form.card.filters method="get" action="/admin/audit" {
            div { label for="a-actor" { "Who" } input id="a-actor" name="actor" value=(value(&query.actor)); }
            div { label for="a-action" { "Action" } input id="a-action" name="action" placeholder="vessel or vessel.kill" value=(value(&query.action)); }
            div { label for="a-target" { "Target" } input id="a-target" name="target" placeholder="id or vessel name" value=(value(&query.target)); }
            div {
                label for="a-outcome" { "Outcome" }
                select id="a-outcome" name="outcome" {
                    @for o in ["", "ok", "denied"] {
                        option value=(o) selected[query.outcome.as_deref().unwrap_or("") == o] { (if o.is_empty() { "any" } else { o }) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        section.card {
            @if list.entries.is_empty() { p.muted { "Nothing matches." } }
            table {
                tr { th { "When" } th { "Who" } th { "Action" } th { "Target" } th { "Outcome" } th { "From" } }
                @for e in &list.entries {
                    tr {
                        td { (e.at.format("%Y-%m-%d %H:%M:%S")) } td { (e.actor) } td { (e.action) }
                        td { (e.target.as_deref().unwrap_or("—")) } td { (e.outcome) } td { (e.source) }
                    }
                }
            }
        }
    };
    page("Audit log", Some(&nav(&s)), body).into_response()
}
