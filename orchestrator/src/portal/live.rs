//! Live updates over Server-Sent Events: while a page that shows changing
//! state is open, the server looks at what that person may see (their
//! vessels with line places, the fleet, the line for admins) once a second
//! and sends `changed` when it differs; the page's script then fetches the
//! page again and swaps its main part. No fragments to keep in step with
//! the templates, and the pages stay the one rendering.

use std::collections::hash_map::DefaultHasher;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::stream::{self, Stream};
use serde::Deserialize;
use vessel_api::vessels::ListQuery;

use super::session::{Sessions, Signed};
use super::usage::Usage;
use crate::api::AppState;
use crate::ops::{self, Action, Caller};

const EVERY: Duration = Duration::from_secs(1);

/// Which page listens: the fleet grid also changes with utilisation.
#[derive(Debug, Default, Deserialize)]
pub struct Listening {
    page: Option<String>,
    /// The utilisation snapshot the page was drawn with (`Snapshot::stamp`):
    /// one that arrived between drawing and listening is told at once.
    usage_at: Option<String>,
}

/// A digest of what the caller's pages show; errors count as a state too.
async fn digest(state: &AppState, caller: &Caller, usage: Option<&Arc<Usage>>) -> u64 {
    let mut h = DefaultHasher::new();
    if let Some(u) = usage {
        u.snapshot().at.hash(&mut h);
    }
    if let Ok(list) = ops::vessels::list(&state.ctx, caller, ListQuery::default()).await {
        for v in list.vessels {
            (v.id, v.state.as_str(), &v.host, v.expires_at).hash(&mut h);
            v.line.map(|p| (p.position, p.of)).hash(&mut h);
            v.idle
                .map(|i| (i.idle_secs / 60, i.warned_at, i.kept_until))
                .hash(&mut h);
        }
    }
    // The queues' totals, from the hosts' counters: any placement or
    // release moves them, and reading them costs no GPU rows (the full
    // grid of a thousand hosts, once a second per open page, would).
    if caller.may(Action::ReadFleet) {
        if let Ok(t) = ops::fleet::totals(&state.ctx, caller).await {
            serde_json::to_string(&t).unwrap_or_default().hash(&mut h);
        }
    }
    if caller.may(Action::DrainHost) {
        if let Ok(l) = ops::line::show(&state.ctx, caller).await {
            serde_json::to_string(&l).unwrap_or_default().hash(&mut h);
        }
    }
    h.finish()
}

pub async fn stream(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    Extension(usage): Extension<Arc<Usage>>,
    Query(on): Query<Listening>,
    s: Signed,
) -> Response {
    let Some(slot) = sessions.open_stream(&s.id) else {
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too many live pages open for this session; close some tabs",
        )
            .into_response();
    };
    let usage = (on.page.as_deref() == Some("/fleet")).then_some(usage);
    let drawn_stale = usage
        .as_ref()
        .is_some_and(|u| u.snapshot().stamp() != on.usage_at.unwrap_or_default());
    let first = if drawn_stale {
        0
    } else {
        digest(&state, &s.session.caller, usage.as_ref()).await
    };
    let changes = changes(state, sessions, s, usage, first, slot);
    Sse::new(changes)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `changed` whenever the digest moves; ends when the session does, so a
/// signed-out or expired browser stops being told anything.
fn changes(
    state: AppState,
    sessions: Arc<Sessions>,
    s: Signed,
    usage: Option<Arc<Usage>>,
    first: u64,
    slot: super::session::StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    // The slot lives as long as the stream: dropped with it when the
    // browser goes away.
    let slot = Arc::new(slot);
    stream::unfold(first, move |last| {
        let _slot = slot.clone();
        let state = state.clone();
        let sessions = sessions.clone();
        let id = s.id.clone();
        let caller = s.session.caller.clone();
        let usage = usage.clone();
        async move {
            loop {
                tokio::time::sleep(EVERY).await;
                sessions.get(&id)?;
                let now = digest(&state, &caller, usage.as_ref()).await;
                if now != last {
                    // Browsers drop an event whose data is empty (the
                    // EventSource spec): the digest is the data.
                    let event = Event::default().event("changed").data(now.to_string());
                    return Some((Ok(event), now));
                }
            }
        }
    })
}
