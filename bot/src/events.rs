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

use serde_json::{json, Value};
use tracing::{info, warn};

use crate::actions::Bot;
use crate::orchestrator::Actor;
use crate::slack::web::MessageRef;
use crate::views::{vessel, Message};

/// How long a hole in the ids may still fill.
const HOLE_TTL: Duration = Duration::from_secs(30);

/// Where messages go: Slack DMs, or the console's screen.
pub trait Inbox: Send + Sync {
    /// Whether this inbox delivers to `user` at all.
    fn wants(&self, user: &str) -> bool;
    fn post(
        &self,
        user: &str,
        message: &Message,
    ) -> impl Future<Output = Result<Option<MessageRef>, String>> + Send;
    fn update(
        &self,
        at: &MessageRef,
        message: &Message,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Alerts for fleet admins.
    fn admin(&self, message: &Message) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    safe: i64,
    seen: BTreeSet<i64>,
    holes: BTreeMap<i64, Instant>,
}

impl Cursor {
    pub fn from_state(v: &Value) -> Self {
        Cursor {
            safe: v["safe"].as_i64().unwrap_or(0),
            seen: v["seen"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
            holes: BTreeMap::new(),
        }
    }

    pub fn to_state(&self) -> Value {
        json!({ "safe": self.safe, "seen": self.seen })
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

/// Reads the outbox forever, delivering through `inbox`.
pub async fn deliver_forever<I: Inbox>(bot: Arc<Bot>, inbox: Arc<I>, cursor_key: Option<String>) {
    let key = cursor_key.unwrap_or_else(|| CURSOR_KEY.to_string());
    let mut cursor = loop {
        match bot.orch.state_get(&key).await {
            Ok(Some(v)) => break Cursor::from_state(&v),
            Ok(None) => break Cursor::default(),
            Err(e) => {
                warn!(error = %e, "cannot read the event cursor; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    info!(after = cursor.after(), "delivering events");
    loop {
        let batch = match bot.orch.events(cursor.after(), 25).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "cannot read events; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let events = batch["events"].as_array().cloned().unwrap_or_default();
        let mut fresh = 0;
        for event in &events {
            let Some(id) = event["id"].as_i64() else {
                continue;
            };
            if !cursor.is_new(id) {
                continue;
            }
            fresh += 1;
            // A failed delivery is retried (the cursor stays put), but one
            // event must not stop all others forever.
            let mut attempt = 0;
            while let Err(e) = handle(&bot, inbox.as_ref(), event).await {
                attempt += 1;
                warn!(event = id, error = %e, attempt, "cannot deliver an event");
                if attempt >= 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
            }
            cursor.delivered(id);
            cursor.settle(Instant::now());
            if let Err(e) = bot.orch.state_put(&key, cursor.to_state()).await {
                warn!(error = %e, "cannot save the event cursor");
            }
        }
        if fresh == 0 && !events.is_empty() {
            // Only already-delivered events above a hole: do not spin.
            tokio::time::sleep(Duration::from_millis(250)).await;
            cursor.settle(Instant::now());
        }
    }
}

async fn handle<I: Inbox>(bot: &Bot, inbox: &I, event: &Value) -> Result<(), String> {
    let kind = event["kind"].as_str().unwrap_or("");
    let payload = &event["payload"];
    if let Some(rest) = kind.strip_prefix("host.") {
        let host = payload["host"].as_str().unwrap_or("?");
        let text = match rest {
            "drain" => format!(
                ":construction: `{host}` is draining (by {}).",
                payload["by"].as_str().unwrap_or("?")
            ),
            "undrain" => format!(":white_check_mark: `{host}` takes vessels again."),
            other => format!(
                ":rotating_light: host `{host}`: {other} {}",
                payload["reason"].as_str().unwrap_or("")
            ),
        };
        return inbox.admin(&Message::says(text)).await;
    }
    let Some(state) = kind.strip_prefix("vessel.") else {
        return Ok(());
    };
    let owner = payload["owner_id"].as_str().unwrap_or("");
    let id = payload["id"].as_str().unwrap_or("");
    if owner.is_empty() || id.is_empty() || !inbox.wants(owner) {
        return Ok(());
    }
    if matches!(state, "provisioning" | "requested" | "pending") {
        return Ok(());
    }
    // Render what is true now, as the owner sees it (with the SSH config).
    let actor = Actor {
        subject: owner.to_string(),
        unix_name: None,
        admin: false,
    };
    let view = bot.orch.show(&actor, id).await.map_err(|e| e.to_string())?;
    let current = view["state"].as_str().unwrap_or("");
    let message = if current == "running" {
        vessel::running(&view)
    } else {
        vessel::ended(&view)
    };
    let key = message_key(id);
    let existing: Option<MessageRef> = bot
        .orch
        .state_get(&key)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|v| serde_json::from_value(v).ok());
    match (state, existing) {
        // Warnings are new messages: they must notify.
        ("idle_warning" | "expiry_warning", _) => {
            let text = payload["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!(
                        "`{}` looks idle and will be reclaimed unless you keep it.",
                        view["name"].as_str().unwrap_or("?")
                    )
                });
            let warning =
                Message::says(format!(":zzz: {text}")).block(crate::views::Block::Actions(vec![
                    crate::views::Button::action("Keep", vessel::KEEP, id).primary(),
                    crate::views::Button::action("Kill", vessel::KILL, id).danger(),
                ]));
            inbox.post(owner, &warning).await.map(|_| ())
        }
        (_, Some(at)) => inbox.update(&at, &message).await,
        // A first message: running, or ended without ever running.
        ("running" | "failed" | "buried" | "lost", None) => {
            if let Some(at) = inbox.post(owner, &message).await? {
                bot.orch
                    .state_put(&key, serde_json::to_value(&at).unwrap_or_default())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let restored = Cursor::from_state(&c.to_state());
        assert_eq!(restored.after(), 5);
        assert!(!restored.is_new(5));
    }
}
