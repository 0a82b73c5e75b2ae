//! Orchestrator events → messages. The outbox is read with a cursor that is
//! kept in the orchestrator (`bot_state`), so a restarted bot resumes where
//! it stopped: every message arrives, once.
//!
//! Ids come from a sequence, and a transaction may commit after a later id
//! is already visible; so the cursor is a "safe" id below which everything
//! is handled, plus the ids above it already delivered. A hole is waited for
//! a while (its transaction may still commit) before it is given up.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use vessel_api::events::{Event, EventKind, EventPayload, HostEvent, VesselEvent};
use vessel_api::vessels::VesselView;
use vessel_api::{ErrorCode, VesselState};

use crate::actions::Bot;
use crate::orchestrator::Actor;
use crate::shutdown::Shutdown;
use crate::slack::web::MessageRef;
use crate::throttle::{self, Throttle, Verdict};
use crate::views::{line, vessel, Message};

/// How long a hole in the ids may still fill.
const HOLE_TTL: Duration = Duration::from_secs(30);

/// Why a message could not be delivered; the event is retried.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("Slack refused or did not answer")]
    Slack(#[from] crate::slack::web::SlackError),
    #[error("the orchestrator refused or did not answer")]
    Orchestrator(#[from] crate::orchestrator::ApiFailure),
}

/// Where messages go: Slack DMs, or the console's screen.
pub trait Inbox: Send + Sync {
    /// Whether this inbox delivers to `user` at all.
    fn wants(&self, user: &str) -> bool;
    fn post(
        &self,
        user: &str,
        message: &Message,
    ) -> impl Future<Output = Result<Option<MessageRef>, DeliveryError>> + Send;
    fn update(
        &self,
        at: &MessageRef,
        message: &Message,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
    /// Alerts for fleet admins.
    fn admin(&self, message: &Message) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    safe: i64,
    seen: BTreeSet<i64>,
    holes: BTreeMap<i64, Instant>,
}

/// The cursor as it is saved in the orchestrator (`bot_state`): the bot's
/// own shape, which only the bot reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCursor {
    pub safe: i64,
    #[serde(default)]
    pub seen: BTreeSet<i64>,
}

impl Cursor {
    pub fn from_state(saved: SavedCursor) -> Self {
        Cursor {
            safe: saved.safe,
            seen: saved.seen,
            holes: BTreeMap::new(),
        }
    }

    pub fn to_state(&self) -> SavedCursor {
        SavedCursor {
            safe: self.safe,
            seen: self.seen.clone(),
        }
    }

    pub fn after(&self) -> i64 {
        self.safe
    }

    pub fn is_new(&self, id: i64) -> bool {
        id > self.safe && !self.seen.contains(&id)
    }

    pub fn delivered(&mut self, id: i64) {
        if id > self.safe {
            self.seen.insert(id);
        }
    }

    /// Moves `safe` over everything delivered, and over holes that waited
    /// long enough.
    pub fn settle(&mut self, now: Instant) {
        let Some(&top) = self.seen.iter().next_back() else {
            return;
        };
        for id in self.safe + 1..top {
            if !self.seen.contains(&id) {
                self.holes.entry(id).or_insert(now);
            }
        }
        loop {
            let next = self.safe + 1;
            if self.seen.remove(&next) {
                self.safe = next;
            } else if self
                .holes
                .get(&next)
                .is_some_and(|since| now.duration_since(*since) >= HOLE_TTL)
            {
                self.holes.remove(&next);
                self.safe = next;
            } else {
                break;
            }
        }
        self.holes.retain(|id, _| *id > self.safe);
    }
}

const CURSOR_KEY: &str = "slack-cursor";

fn message_key(vessel_id: &str) -> String {
    format!("slack-message:{vessel_id}")
}

/// The waiting DM of a request that went through the line.
fn line_key(vessel_id: &str) -> String {
    format!("line:{vessel_id}")
}

/// Whose waiting DM: the vessel and the owner to act as when reading it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LineDm {
    vessel: String,
    owner: String,
}

type LineEdits = Throttle<LineDm>;

/// Resolves when the next deferred edit is due; never, when none is.
async fn until(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads the outbox and delivers through `inbox` until `shutdown`; then
/// sends the waiting DMs' deferred edits (the latest place is never
/// dropped) and returns. An event is delivered whole or left for the next
/// start: the stop is looked at between events, not inside one.
pub async fn deliver_until_stopped<I: Inbox>(
    bot: Arc<Bot>,
    inbox: Arc<I>,
    cursor_key: Option<String>,
    shutdown: Shutdown,
) {
    let key = cursor_key.unwrap_or_else(|| CURSOR_KEY.to_string());
    let Some(mut cursor) = load_cursor(&bot, &key, &shutdown).await else {
        return;
    };
    info!(after = cursor.after(), "delivering events");
    let mut edits = LineEdits::new(throttle::EVERY);
    let mut outbox = Outbox {
        bot: &bot,
        inbox: inbox.as_ref(),
        edits: &mut edits,
        shutdown: &shutdown,
    };
    while let Some(events) = outbox.next_batch(&cursor).await {
        let fresh = outbox.deliver(&events, &mut cursor, &key).await;
        if fresh == 0 && !events.is_empty() && !shutdown.is_stopping() {
            // Only already-delivered events above a hole: do not spin.
            shutdown.sleep(Duration::from_millis(250)).await;
            cursor.settle(Instant::now());
        }
    }
    outbox.flush_deferred().await;
    info!("stopped delivering events");
}

/// The saved cursor, retried until it is read; None when stopped first.
async fn load_cursor(bot: &Bot, key: &str, shutdown: &Shutdown) -> Option<Cursor> {
    loop {
        match bot.orch.state_get(key).await {
            Ok(Some(saved)) => return Some(Cursor::from_state(saved)),
            Ok(None) => return Some(Cursor::default()),
            Err(e) => {
                warn!(error = %crate::chain(&e), "cannot read the event cursor; retrying");
                if !shutdown.sleep(Duration::from_secs(1)).await {
                    return None;
                }
            }
        }
    }
}

/// What delivering needs at hand, for one run of the loop.
struct Outbox<'a, I> {
    bot: &'a Bot,
    inbox: &'a I,
    edits: &'a mut LineEdits,
    shutdown: &'a Shutdown,
}

impl<I: Inbox> Outbox<'_, I> {
    /// The next events after `cursor`, long-polled; due edits of waiting
    /// DMs go out meanwhile. None once the stop is asked.
    async fn next_batch(&mut self, cursor: &Cursor) -> Option<Vec<Event>> {
        loop {
            if self.shutdown.is_stopping() {
                return None;
            }
            flush_due(self.bot, self.inbox, self.edits).await;
            // The poll is kept (pinned), not restarted, around each flush.
            let poll = self
                .bot
                .orch
                .events(cursor.after(), Duration::from_secs(25));
            tokio::pin!(poll);
            let polled = loop {
                tokio::select! {
                    polled = &mut poll => break polled,
                    () = until(self.edits.next_due()) => {
                        flush_due(self.bot, self.inbox, self.edits).await;
                    }
                    () = self.shutdown.wait() => return None,
                }
            };
            match polled {
                Ok(batch) => return Some(batch.events),
                Err(e) => {
                    warn!(error = %crate::chain(&e), "cannot read events; retrying");
                    self.shutdown.sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Delivers the events `cursor` has not seen, saving it after each;
    /// returns how many were new. Stops early, between events, at a stop.
    async fn deliver(&mut self, events: &[Event], cursor: &mut Cursor, key: &str) -> usize {
        let mut fresh = 0;
        for event in events {
            if !cursor.is_new(event.id) {
                continue;
            }
            if self.shutdown.is_stopping() {
                break;
            }
            fresh += 1;
            if !self.deliver_one(event).await {
                break;
            }
            cursor.delivered(event.id);
            cursor.settle(Instant::now());
            if let Err(e) = self.bot.orch.state_put(key, &cursor.to_state()).await {
                warn!(error = %crate::chain(&e), "cannot save the event cursor");
            }
        }
        fresh
    }

    /// Delivers one event, retrying a failure a few times: one event must
    /// not stop all others forever. False when a stop came between tries:
    /// the event is then left for the next start.
    async fn deliver_one(&mut self, event: &Event) -> bool {
        let mut attempt = 0;
        while let Err(e) = handle(self.bot, self.inbox, self.edits, event).await {
            attempt += 1;
            warn!(event = event.id, error = %crate::chain(&e), attempt, "cannot deliver an event");
            if attempt >= 5 {
                break;
            }
            let backoff = Duration::from_millis(200 * (1 << attempt));
            if !self.shutdown.sleep(backoff).await {
                return false;
            }
        }
        true
    }

    /// At a stop: every deferred edit of a waiting DM, now, once.
    async fn flush_deferred(&mut self) {
        for dm in self.edits.take_deferred(tokio::time::Instant::now()) {
            if let Err(e) = show_place(self.bot, self.inbox, &dm).await {
                warn!(vessel = %dm.vessel, error = %crate::chain(&e), "cannot edit a waiting DM before stopping");
            }
        }
    }
}

async fn handle<I: Inbox>(
    bot: &Bot,
    inbox: &I,
    edits: &mut LineEdits,
    event: &Event,
) -> Result<(), DeliveryError> {
    match (&event.kind, &event.payload) {
        // One message per person per incident: the orchestrator wrote one
        // event for each, and the cursor drops repeats.
        (EventKind::GpuMetricsStale, EventPayload::Host(host)) => {
            let text = host.message.clone().unwrap_or_else(|| {
                format!(
                    ":warning: GPU metrics from `{}` stopped arriving.",
                    host.host
                )
            });
            match host.to.as_deref() {
                Some(to) if inbox.wants(to) => {
                    inbox.post(to, &Message::says(text)).await.map(|_| ())
                }
                Some(_) => Ok(()),
                None => inbox.admin(&Message::says(text)).await,
            }
        }
        (kind, EventPayload::Host(host)) if kind.is_host() => {
            inbox.admin(&Message::says(host_text(kind, host))).await
        }
        (kind, EventPayload::Vessel(v)) => tell_owner(bot, inbox, edits, kind, v).await,
        // A kind or payload this bot does not know: a newer orchestrator.
        _ => Ok(()),
    }
}

fn host_text(kind: &EventKind, e: &HostEvent) -> String {
    let host = &e.host;
    match kind {
        EventKind::HostDrain => format!(
            ":construction: `{host}` is draining (by {}).",
            e.by.as_deref().unwrap_or("?")
        ),
        EventKind::HostUndrain => format!(":white_check_mark: `{host}` takes vessels again."),
        other => format!(
            ":rotating_light: host `{host}`: {} {}",
            other.to_string().trim_start_matches("host."),
            e.reason.as_deref().unwrap_or("")
        ),
    }
}

/// Where a vessel event goes, seen from the event alone (nothing read yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Not this inbox's to deliver, or nothing to say yet (`requested`).
    Ignore,
    /// `pending`: the waiting DM, once.
    JoinedLine,
    /// `queued`: the waiting DM shows the new place (throttled).
    Moved,
    /// `provisioning`: the waiting DM, if any, says the request was
    /// placed; the vessel's own DM waits for `running`.
    LeftLine,
    /// Anything else: read the vessel, end its waiting DM if it just left
    /// the line, then [`decide`] about its own DM.
    Render,
}

fn route(kind: &EventKind, for_this_inbox: bool) -> Route {
    if !for_this_inbox {
        return Route::Ignore;
    }
    match kind {
        EventKind::Vessel(VesselState::Requested) => Route::Ignore,
        EventKind::Vessel(VesselState::Pending) => Route::JoinedLine,
        EventKind::VesselQueued => Route::Moved,
        EventKind::Vessel(VesselState::Provisioning) => Route::LeftLine,
        _ => Route::Render,
    }
}

/// What is known of a vessel's earlier messages when its news arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Earlier {
    /// Its own DM (running, then how it ended), if one was posted.
    pub dm: Option<MessageRef>,
    /// Whether its request had a waiting DM, just edited to say how it
    /// left the line.
    pub waited: bool,
}

/// What a vessel's news does to its own DM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmAction {
    Nothing,
    /// A new message with Keep and Kill: a warning must notify, which an
    /// edit does not.
    Warn,
    /// Edit the DM in place to show the vessel as it is now.
    Update(MessageRef),
    /// It waited and gave up: a new message says so, as the waiting DM's
    /// edit does not notify.
    TellExpired,
    /// The first DM (running, or ended without ever running): post it and
    /// remember where, for the edits that follow.
    PostFirst,
}

/// The DM decision, without I/O: the event, whether the vessel ever ran,
/// and what was said before.
pub fn decide(kind: &EventKind, ever_ran: bool, earlier: &Earlier) -> DmAction {
    use VesselState::{Buried, Expired, Failed, Lost, Running};
    match (kind, &earlier.dm) {
        (
            EventKind::IdleWarning
            | EventKind::ExpiryWarning
            | EventKind::DiskWarning
            | EventKind::HibernationWarning
            | EventKind::BurialWarning,
            _,
        ) => DmAction::Warn,
        (_, Some(at)) => DmAction::Update(at.clone()),
        (EventKind::Vessel(Expired), None) => DmAction::TellExpired,
        // Cancelled while waiting: the waiting DM says so; nothing to add.
        (EventKind::Vessel(Buried), None) if earlier.waited && !ever_ran => DmAction::Nothing,
        (EventKind::Vessel(Running | Failed | Buried | Lost), None) => DmAction::PostFirst,
        _ => DmAction::Nothing,
    }
}

/// A vessel's news for its owner: the DM, updated in place; warnings as new
/// messages (they must notify).
async fn tell_owner<I: Inbox>(
    bot: &Bot,
    inbox: &I,
    edits: &mut LineEdits,
    kind: &EventKind,
    e: &VesselEvent,
) -> Result<(), DeliveryError> {
    let owner = e.owner_id.as_str();
    let dm = LineDm {
        vessel: e.id.to_string(),
        owner: owner.to_string(),
    };
    let route = route(kind, !owner.is_empty() && inbox.wants(owner));
    match route {
        Route::Ignore => return Ok(()),
        Route::JoinedLine => return joined_line(bot, inbox, edits, dm).await,
        Route::Moved => return moved(bot, inbox, edits, dm).await,
        Route::LeftLine | Route::Render => {}
    }
    // Render what is true now, as the owner sees it (with the SSH config).
    let view = bot.orch.show(&owner_actor(owner), &dm.vessel).await?;
    let waited = left_line(bot, inbox, edits, &dm, kind, &view).await?;
    if route == Route::LeftLine {
        return Ok(());
    }
    let key = message_key(&dm.vessel);
    let earlier = Earlier {
        dm: bot.orch.state_get(&key).await?,
        waited,
    };
    match decide(kind, view.started_at.is_some(), &earlier) {
        DmAction::Nothing => Ok(()),
        DmAction::Warn => inbox
            .post(owner, &warning(kind, e, &view))
            .await
            .map(|_| ()),
        DmAction::Update(at) => inbox.update(&at, &vessel_dm(&view)).await,
        DmAction::TellExpired => inbox.post(owner, &line::expired(&view)).await.map(|_| ()),
        DmAction::PostFirst => {
            if let Some(at) = inbox.post(owner, &vessel_dm(&view)).await? {
                bot.orch.state_put(&key, &at).await?;
            }
            Ok(())
        }
    }
}

/// The vessel's own DM as it is now: how to reach it, or how it ended.
fn vessel_dm(view: &VesselView) -> Message {
    match view.state {
        VesselState::Running => vessel::running(view),
        VesselState::Hibernating => vessel::hibernating(view),
        VesselState::Hibernated => vessel::hibernated(view),
        _ => vessel::ended(view),
    }
}

/// An idle or expiry warning, with what the orchestrator said and the
/// buttons to answer it.
/// A warning that must notify: Keep and Kill for idle time and lifetime;
/// for disk, Kill only (keeping it changes nothing: freeing space does).
fn warning(kind: &EventKind, e: &VesselEvent, view: &VesselView) -> Message {
    let id = e.id.to_string();
    let kill = crate::views::Button::action("Kill", vessel::KILL, &id).danger();
    let said = |fallback: &str| e.message.clone().unwrap_or_else(|| fallback.to_string());
    match kind {
        EventKind::HibernationWarning => {
            return Message::says(format!(
                ":zzz: {}",
                said("It looks idle and will be hibernated.")
            ))
            .block(crate::views::Block::Actions(vec![
                crate::views::Button::action("Keep", vessel::KEEP, &id).primary(),
                crate::views::Button::action("Hibernate now", vessel::HIBERNATE, &id),
            ]))
        }
        EventKind::BurialWarning => {
            return Message::says(format!(
                ":hourglass: {}",
                said("It has slept long and will be buried.")
            ))
            .block(crate::views::Block::Actions(vec![
                crate::views::Button::action("Wake", vessel::WAKE, &id).primary(),
                kill,
            ]))
        }
        _ => {}
    }
    if *kind == EventKind::DiskWarning {
        let text = e.message.clone().unwrap_or_else(|| {
            format!(
                "`{}` wrote more outside its home than its queue allows.",
                view.name
            )
        });
        return Message::says(format!(":floppy_disk: {text}"))
            .block(crate::views::Block::Actions(vec![kill]));
    }
    let text = e.message.clone().unwrap_or_else(|| {
        format!(
            "`{}` looks idle and will be reclaimed unless you keep it.",
            view.name
        )
    });
    Message::says(format!(":zzz: {text}")).block(crate::views::Block::Actions(vec![
        crate::views::Button::action("Keep", vessel::KEEP, &id).primary(),
        kill,
    ]))
}

fn owner_actor(owner: &str) -> Actor {
    Actor {
        subject: owner.to_string(),
        unix_name: None,
        admin: false,
    }
}

/// `vessel.pending`: the waiting DM, once. A repeated event (delivery is at
/// least once) counts as a change of place instead of a second DM.
async fn joined_line<I: Inbox>(
    bot: &Bot,
    inbox: &I,
    edits: &mut LineEdits,
    dm: LineDm,
) -> Result<(), DeliveryError> {
    let posted: Option<MessageRef> = bot.orch.state_get(&line_key(&dm.vessel)).await?;
    // Posting counts as an edit: a move right after it waits its turn.
    let verdict = edits.update(dm.clone(), tokio::time::Instant::now());
    if posted.is_some() && verdict != Verdict::Now {
        return Ok(());
    }
    show_place(bot, inbox, &dm).await
}

/// `vessel.queued`: the waiting DM shows the new place, at most once per
/// interval; a deferred edit renders whatever is true when it is sent.
async fn moved<I: Inbox>(
    bot: &Bot,
    inbox: &I,
    edits: &mut LineEdits,
    dm: LineDm,
) -> Result<(), DeliveryError> {
    match edits.update(dm.clone(), tokio::time::Instant::now()) {
        Verdict::Now => show_place(bot, inbox, &dm).await,
        Verdict::Deferred(_) => Ok(()),
    }
}

/// Shows a waiting request's place as it is now: edits its waiting DM, or
/// posts it when there is none yet (its `pending` was not delivered here).
/// Once it has left the line, the events that say so edit the DM instead.
async fn show_place<I: Inbox>(bot: &Bot, inbox: &I, dm: &LineDm) -> Result<(), DeliveryError> {
    let view = match bot.orch.show(&owner_actor(&dm.owner), &dm.vessel).await {
        Ok(v) => v,
        Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if view.state != VesselState::Pending {
        return Ok(());
    }
    let key = line_key(&dm.vessel);
    let message = line::waiting(&view);
    match bot.orch.state_get::<MessageRef>(&key).await? {
        Some(at) => inbox.update(&at, &message).await,
        None => {
            if let Some(at) = inbox.post(&dm.owner, &message).await? {
                bot.orch.state_put(&key, &at).await?;
            }
            Ok(())
        }
    }
}

/// Edits a waiting DM to say how its request left the line (placed,
/// expired, cancelled, failed). Only those transitions: a vessel that ran
/// for days and is then buried leaves its old "placed" note alone. Returns
/// whether the request had a waiting DM.
async fn left_line<I: Inbox>(
    bot: &Bot,
    inbox: &I,
    edits: &mut LineEdits,
    dm: &LineDm,
    kind: &EventKind,
    view: &VesselView,
) -> Result<bool, DeliveryError> {
    if !leaves_line(kind, view.started_at.is_some()) {
        return Ok(false);
    }
    let Some(at) = bot
        .orch
        .state_get::<MessageRef>(&line_key(&dm.vessel))
        .await?
    else {
        return Ok(false);
    };
    // Final: a deferred "#2 in line" must not land after this.
    edits.finish(dm);
    inbox.update(&at, &line::line_dm(view)).await?;
    Ok(true)
}

/// Whether this event is the request leaving the line: placed, or ended
/// without ever running (expired, cancelled, failed, lost).
fn leaves_line(kind: &EventKind, ever_ran: bool) -> bool {
    match kind {
        EventKind::Vessel(VesselState::Provisioning | VesselState::Running) => true,
        EventKind::Vessel(
            VesselState::Expired | VesselState::Buried | VesselState::Failed | VesselState::Lost,
        ) => !ever_ran,
        _ => false,
    }
}

/// Edits the waiting DMs whose deferred edit is due.
async fn flush_due<I: Inbox>(bot: &Bot, inbox: &I, edits: &mut LineEdits) {
    let now = tokio::time::Instant::now();
    for dm in edits.take_due(now) {
        match show_place(bot, inbox, &dm).await {
            Ok(()) => edits.succeeded(&dm),
            Err(e) => {
                warn!(vessel = %dm.vessel, error = %crate::chain(&e), "cannot edit a waiting DM; trying again");
                edits.failed(dm, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(s: VesselState) -> EventKind {
        EventKind::Vessel(s)
    }

    #[test]
    fn each_vessel_event_goes_its_way_before_anything_is_read() {
        use Route::*;
        use VesselState::*;
        let cases = [
            (state(Requested), true, Ignore),
            (state(Pending), true, JoinedLine),
            (EventKind::VesselQueued, true, Moved),
            (state(Provisioning), true, LeftLine),
            (state(Running), true, Render),
            (state(Stopping), true, Render),
            (state(Buried), true, Render),
            (state(Failed), true, Render),
            (state(Lost), true, Render),
            (state(Expired), true, Render),
            (EventKind::VesselExtended, true, Render),
            (EventKind::IdleWarning, true, Render),
            (EventKind::ExpiryWarning, true, Render),
            // Not this inbox's owner (a console user in Slack, no owner).
            (state(Running), false, Ignore),
            (state(Pending), false, Ignore),
            (EventKind::IdleWarning, false, Ignore),
        ];
        for (kind, for_this_inbox, expected) in cases {
            assert_eq!(
                route(&kind, for_this_inbox),
                expected,
                "{kind} {for_this_inbox}"
            );
        }
    }

    #[test]
    fn a_request_leaves_the_line_when_placed_or_when_it_ends_without_running() {
        use VesselState::*;
        let cases = [
            (state(Provisioning), false, true),
            (state(Running), false, true),
            (state(Running), true, true),
            (state(Expired), false, true),
            (state(Buried), false, true),
            (state(Failed), false, true),
            (state(Lost), false, true),
            // Ran for days, then ended: its "placed" note stays as it is.
            (state(Buried), true, false),
            (state(Failed), true, false),
            (state(Lost), true, false),
            (state(Stopping), false, false),
            (state(Pending), false, false),
            (EventKind::VesselQueued, false, false),
            (EventKind::IdleWarning, true, false),
        ];
        for (kind, ran, expected) in cases {
            assert_eq!(leaves_line(&kind, ran), expected, "{kind} ran={ran}");
        }
    }

    #[test]
    fn the_dm_decision_by_case() {
        use DmAction::*;
        use EventKind::{DiskWarning, ExpiryWarning, IdleWarning, VesselExtended};
        use VesselState::*;
        let at = MessageRef {
            channel: "DUALICE".into(),
            ts: "1700000000.000001".into(),
        };
        let (ran, never_ran) = (true, false);
        let none = Earlier::default();
        let posted = Earlier {
            dm: Some(at.clone()),
            waited: false,
        };
        let waited = Earlier {
            dm: None,
            waited: true,
        };
        let edit = Update(at);
        let unknown = EventKind::Other("vessel.renamed".into());
        let cases = [
            // Warnings notify: always a new message, DM or not.
            (IdleWarning, ran, &none, Warn),
            (IdleWarning, ran, &posted, Warn),
            (ExpiryWarning, ran, &posted, Warn),
            (DiskWarning, ran, &posted, Warn),
            // A DM exists: every other change edits it in place.
            (state(Running), ran, &posted, edit.clone()),
            (state(Stopping), ran, &posted, edit.clone()),
            (state(Buried), ran, &posted, edit.clone()),
            (VesselExtended, ran, &posted, edit.clone()),
            // It waited and gave up: told by a new message.
            (state(Expired), never_ran, &waited, TellExpired),
            (state(Expired), never_ran, &none, TellExpired),
            // Cancelled while waiting: its waiting DM said so.
            (state(Buried), never_ran, &waited, Nothing),
            // The first DM: running, or ended some other way.
            (state(Buried), never_ran, &none, PostFirst),
            (state(Buried), ran, &waited, PostFirst),
            (state(Running), ran, &none, PostFirst),
            (state(Running), ran, &waited, PostFirst),
            (state(Failed), never_ran, &none, PostFirst),
            (state(Failed), never_ran, &waited, PostFirst),
            (state(Lost), ran, &none, PostFirst),
            // Nothing to edit, nothing worth a new message.
            (state(Stopping), ran, &none, Nothing),
            (VesselExtended, ran, &none, Nothing),
            (unknown, ran, &none, Nothing),
        ];
        for (kind, ran, earlier, expected) in cases {
            let got = decide(&kind, ran, earlier);
            assert_eq!(got, expected, "{kind}, ran: {ran}, {earlier:?}");
        }
    }

    #[test]
    fn the_cursor_waits_for_holes_then_gives_up_on_them() {
        let t0 = Instant::now();
        let mut c = Cursor::default();
        c.delivered(1);
        c.delivered(3);
        c.settle(t0);
        assert_eq!(c.after(), 1, "2 may still commit");
        assert!(!c.is_new(3) && c.is_new(2));
        c.delivered(2);
        c.settle(t0);
        assert_eq!(c.after(), 3);

        c.delivered(5);
        c.settle(t0);
        assert_eq!(c.after(), 3);
        c.settle(t0 + HOLE_TTL);
        assert_eq!(c.after(), 5, "4 never committed");

        let restored = Cursor::from_state(c.to_state());
        assert_eq!(restored.after(), 5);
        assert!(!restored.is_new(5));
    }
}
