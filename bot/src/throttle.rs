//! At most one edit of a message every few seconds, per message: a line
//! that moves often (a kill frees room, five requests move up) must not
//! turn into a burst of `chat.update` calls Slack rate-limits. An update
//! that comes too soon is deferred to the end of the interval, later
//! updates join it, and whoever flushes it renders the state *then* (the
//! latest wins). A final edit (the request left the line) is never
//! throttled and drops a deferred one, which would show an older state
//! after it. A stop sends what is deferred at once: the latest state is
//! never dropped.
//!
//! Pure bookkeeping over instants the caller passes: the events loop passes
//! `Instant::now()`, tests pass their own, so no test waits on a clock.

use std::collections::HashMap;
use std::hash::Hash;

use tokio::time::{Duration, Instant};

/// How often a waiting DM may be edited.
pub const EVERY: Duration = Duration::from_secs(3);

/// A deferred edit that fails is tried again this many times, then left
/// to the next change (a deleted message would fail forever).
const RETRIES: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Edit now (counted as done now).
    Now,
    /// Leave it: it is edited at this instant, with the state of then.
    Deferred(Instant),
}

#[derive(Debug, Default)]
struct Slot {
    last: Option<Instant>,
    due: Option<Instant>,
    failures: u8,
}

#[derive(Debug)]
pub struct Throttle<K> {
    every: Duration,
    slots: HashMap<K, Slot>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            slots: HashMap::new(),
        }
    }

    /// `key`'s message should show a new state, as of `now`.
    pub fn update(&mut self, key: K, now: Instant) -> Verdict {
        let every = self.every;
        let slot = self.slots.entry(key).or_default();
        // A new state deserves new tries.
        slot.failures = 0;
        if let Some(due) = slot.due {
            return Verdict::Deferred(due);
        }
        match slot.last {
            Some(last) if now < last + every => {
                let due = last + every;
                slot.due = Some(due);
                Verdict::Deferred(due)
            }
            _ => {
                slot.last = Some(now);
                Verdict::Now
            }
        }
    }

    /// When the next deferred edit is due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.slots.values().filter_map(|s| s.due).min()
    }

    /// The keys whose deferred edit is due at `now`; each counts as edited
    /// now. Keys with nothing pending and a quiet interval are forgotten,
    /// so the map holds only what moves.
    pub fn take_due(&mut self, now: Instant) -> Vec<K> {
        let every = self.every;
        let mut due = Vec::new();
        for (key, slot) in &mut self.slots {
            if slot.due.is_some_and(|d| d <= now) {
                slot.due = None;
                slot.last = Some(now);
                due.push(key.clone());
            }
        }
        self.slots
            .retain(|_, s| s.due.is_some() || s.last.is_some_and(|l| now < l + every));
        due
    }

    /// Every key with a deferred edit, due or not, each counted as edited
    /// now: the bot is stopping and will not be there when they fall due.
    /// This once, an edit may follow the last one sooner than `every`.
    pub fn take_deferred(&mut self, now: Instant) -> Vec<K> {
        let mut deferred = Vec::new();
        for (key, slot) in &mut self.slots {
            if slot.due.take().is_some() {
                slot.last = Some(now);
                deferred.push(key.clone());
            }
        }
        deferred
    }

    /// A deferred edit of `key` failed at `now`: try again one interval
    /// later, a few times.
    pub fn failed(&mut self, key: K, now: Instant) {
        let every = self.every;
        let slot = self.slots.entry(key).or_default();
        slot.failures += 1;
        if slot.failures <= RETRIES {
            slot.due = Some(now + every);
        }
    }

    /// A deferred edit of `key` went through.
    pub fn succeeded(&mut self, key: &K) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.failures = 0;
        }
    }

    /// The message got its final edit: nothing deferred may follow it.
    pub fn finish(&mut self, key: &K) {
        self.slots.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_first_update_goes_out_and_a_burst_becomes_one_deferred_edit() {
        let t0 = Instant::now();
        let mut t = Throttle::new(EVERY);
        assert_eq!(t.update("a", t0), Verdict::Now);
        assert_eq!(t.next_due(), None);
        // Three more within the interval: one edit, at the interval's end.
        for after in [1, 2, 2] {
            assert_eq!(t.update("a", t0 + s(after)), Verdict::Deferred(t0 + s(3)));
        }
        assert_eq!(t.next_due(), Some(t0 + s(3)));
        assert!(t.take_due(t0 + s(2)).is_empty(), "not before it is due");
        assert_eq!(t.take_due(t0 + s(3)), vec!["a"]);
        assert_eq!(t.take_due(t0 + s(4)), Vec::<&str>::new(), "flushed once");
        // That flush counts as an edit: the next update waits for it.
        assert_eq!(t.update("a", t0 + s(5)), Verdict::Deferred(t0 + s(6)));
        // A quiet interval later, an update goes out at once.
        t.take_due(t0 + s(6));
        assert_eq!(t.update("a", t0 + s(9)), Verdict::Now);
    }

    #[test]
    fn messages_are_throttled_each_on_their_own() {
        let t0 = Instant::now();
        let mut t = Throttle::new(EVERY);
        assert_eq!(t.update("a", t0), Verdict::Now);
        assert_eq!(t.update("b", t0 + s(1)), Verdict::Now);
        assert_eq!(t.update("a", t0 + s(1)), Verdict::Deferred(t0 + s(3)));
        assert_eq!(t.update("b", t0 + s(2)), Verdict::Deferred(t0 + s(4)));
        assert_eq!(t.next_due(), Some(t0 + s(3)));
        assert_eq!(t.take_due(t0 + s(3)), vec!["a"]);
        assert_eq!(t.next_due(), Some(t0 + s(4)));
        assert_eq!(t.take_due(t0 + s(4)), vec!["b"]);
    }

    #[test]
    fn a_final_edit_drops_what_was_deferred_and_is_never_throttled() {
        let t0 = Instant::now();
        let mut t = Throttle::new(EVERY);
        t.update("a", t0);
        assert!(matches!(t.update("a", t0 + s(1)), Verdict::Deferred(_)));
        // Placed: the final edit goes out now (the caller does not ask),
        // and the deferred "#1 in line" must not land after it.
        t.finish(&"a");
        assert_eq!(t.next_due(), None);
        assert!(t.take_due(t0 + s(10)).is_empty());
    }

    #[test]
    fn a_stop_takes_every_deferred_edit_due_or_not() {
        let t0 = Instant::now();
        let mut t = Throttle::new(EVERY);
        t.update("a", t0);
        t.update("b", t0);
        t.update("c", t0);
        assert!(matches!(t.update("a", t0 + s(1)), Verdict::Deferred(_)));
        assert!(matches!(t.update("b", t0 + s(2)), Verdict::Deferred(_)));
        // `c` was edited and nothing is pending: nothing to send for it.
        let mut taken = t.take_deferred(t0 + s(2));
        taken.sort();
        assert_eq!(taken, vec!["a", "b"]);
        assert_eq!(t.next_due(), None, "nothing is left to send");
        assert!(t.take_deferred(t0 + s(2)).is_empty(), "sent once");
    }

    #[test]
    fn a_failed_flush_is_tried_again_a_few_times() {
        let t0 = Instant::now();
        let mut t = Throttle::new(EVERY);
        t.update("a", t0);
        t.update("a", t0 + s(1));
        let mut now = t0 + s(3);
        for _ in 0..RETRIES {
            assert_eq!(t.take_due(now), vec!["a"]);
            t.failed("a", now);
            now += EVERY;
            assert_eq!(t.next_due(), Some(now));
        }
        assert_eq!(t.take_due(now), vec!["a"]);
        t.failed("a", now);
        assert_eq!(t.next_due(), None, "given up: the next change tries again");
        // A success resets the count.
        t.update("b", t0);
        t.update("b", t0 + s(1));
        assert_eq!(t.take_due(t0 + s(3)), vec!["b"]);
        t.failed("b", t0 + s(3));
        assert_eq!(t.take_due(t0 + s(6)), vec!["b"]);
        t.succeeded(&"b");
        assert_eq!(t.slots[&"b"].failures, 0);
    }
}
