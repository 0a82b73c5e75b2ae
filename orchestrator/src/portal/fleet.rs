//! The Fleet page, for everyone who may read the fleet: per-queue totals,
//! and a grid of hosts × GPUs coloured by state (free, in use, idle,
//! drained, lost — each also in words) with the owner, the current
//! utilisation and a six-hour sparkline per host. No secrets: owners by
//! unix name, nothing else of a vessel.
//!
//! A lab's fleet can be a thousand hosts; the grid shows a page of them at
//! a time (and one queue if asked), so the page stays small and fast.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use vessel_api::fleet::{DiskEnforcement, GpuSlot, HostState, HostStatus};

use super::pages::{nav, refusal};
use super::session::Signed;
use super::usage::{Snapshot, Usage};
use super::view::{live_page, sparkline};
use crate::api::AppState;
use crate::ops;

/// Hosts per page of the grid: 400 GPU cells at 8 a host, well under the
/// 100 KB a page may weigh.
pub const PER_PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    pub queue: Option<String>,
    pub page: Option<usize>,
}

/// What a GPU cell says: class and word (never colour alone).
fn gpu_state(
    h: &HostStatus,
    g: &GpuSlot,
    util: Option<f64>,
    idle_below: f64,
) -> (&'static str, &'static str) {
    if !h.online {
        ("g-lost", "lost")
    } else if g.vessel.is_some() {
        match util {
            Some(u) if u <= idle_below => ("g-idle", "idle"),
            _ => ("g-used", "in use"),
        }
    } else if h.state == HostState::Draining {
        ("g-drained", "drained")
    } else {
        ("g-free", "free")
    }
}

/// How a queue's `disk` limit holds on the host, for its tooltip.
fn disk_title(h: &HostStatus) -> String {
    let driver = h.storage_driver.as_deref().unwrap_or("unknown");
    match h.disk_limit {
        DiskEnforcement::Sized => format!("{driver}: the engine sizes each vessel"),
        DiskEnforcement::Measured => {
            format!("{driver}: cannot size a vessel; the undertaker measures each sweep")
        }
    }
}

fn host_row(h: &HostStatus, snap: &Snapshot, idle_below: f64) -> Markup {
    let line = snap.host_history(h.gpus.iter().map(|g| g.uuid.as_str()));
    html! {
        tr id={ "h-" (h.name) } {
            td {
                (h.name) br; span.muted { (h.queue.as_str()) }
                br; span.muted title=(disk_title(h)) { "disk " (h.disk_limit.as_str()) }
            }
            td {
                @if !h.online { "lost" } @else if h.state == HostState::Draining { "drained" } @else { "active" }
            }
            td { (sparkline(&line, &format!("{} GPU use, 6 h", h.name))) }
            td {
                div.grid {
                    @for g in &h.gpus {
                        @let util = snap.now.get(&g.uuid).copied();
                        @let (class, word) = gpu_state(h, g, util, idle_below);
                        div class={ "gpu " (class) } data-gpu=(g.uuid) title=(g.model) {
                            "#" (g.index) " " (word)
                            @if let Some(o) = &g.owner { br; (o) }
                            @if let Some(u) = util { br; (format!("{u:.0}%")) }
                        }
                    }
                }
            }
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    Extension(usage): Extension<Arc<Usage>>,
    s: Signed,
    Query(q): Query<FleetQuery>,
) -> Response {
    let idle_below = state.ctx.config.undertaker.gpu_idle_below;
    let totals = match ops::fleet::totals(&state.ctx, &s.session.caller).await {
        Ok(t) => t,
        Err(e) => return refusal(Some(&s), e),
    };
    let count: u32 = totals
        .iter()
        .filter(|(name, _)| q.queue.as_deref().is_none_or(|want| name.as_str() == want))
        .map(|(_, t)| t.hosts)
        .sum();
    let pages = (count as usize).div_ceil(PER_PAGE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let offset = ((page - 1) * PER_PAGE) as i64;
    let hosts = match ops::fleet::hosts_page(
        &state.ctx,
        &s.session.caller,
        q.queue.as_deref(),
        offset,
        PER_PAGE as i64,
    )
    .await
    {
        Ok(h) => h,
        Err(e) => return refusal(Some(&s), e),
    };
    let snap = usage.snapshot();
    let link = |queue: Option<&str>, page: usize| match queue {
        Some(qn) => format!("/fleet?queue={qn}&page={page}"),
        None => format!("/fleet?page={page}"),
    };
    let body = html! {
        section.card {
            h2 { "Queues" }
            table {
                tr { th { "Queue" } th { "Hosts online" } th { "GPUs free / all" } th { "CPUs free" } th { "Waiting" } }
                @for (name, t) in &totals {
                    tr {
                        td { a href=(link(Some(name.as_str()), 1)) { (name.as_str()) } }
                        td { (t.hosts_online) " / " (t.hosts) } td { (t.gpus_free) " / " (t.gpus) }
                        td { (t.cores_free) } td { (t.waiting) }
                    }
                }
            }
        }
        p.legend id="usage" data-at=(snap.stamp()) {
            @for (class, word) in [("g-free", "free"), ("g-used", "in use"), ("g-idle", "idle"), ("g-drained", "drained"), ("g-lost", "lost")] {
                span { i class={ "sw " (class) } {} " " (word) }
            }
            @match snap.at {
                Some(at) => span.muted { "utilisation as of " (at.format("%H:%M:%S UTC")) },
                None => span.muted { "no utilisation data" },
            }
        }
        section.card {
            h2 {
                "Hosts"
                @if let Some(qn) = &q.queue { " in " (qn) " " a href="/fleet" { "(all queues)" } }
            }
            table {
                tr { th { "Host" } th { "State" } th { "GPU use" } th { "GPUs" } }
                @for h in &hosts { (host_row(h, &snap, idle_below)) }
            }
            @if pages > 1 {
                nav.pager aria-label="Pages of hosts" {
                    @if page > 1 { a href=(link(q.queue.as_deref(), page - 1)) { "← Previous" } }
                    span { "Page " (page) " of " (pages) " (" (count) " hosts)" }
                    @if page < pages { a href=(link(q.queue.as_deref(), page + 1)) { "Next →" } }
                }
            }
        }
    };
    live_page("Fleet", Some(&nav(&s)), body).into_response()
}
