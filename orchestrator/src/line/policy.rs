//! The line's order, decided without I/O: given a queue's hosts (with what
//! is free on each), its waiting requests in line order, and each owner's
//! use and limits, which requests to place where, which wait and why, and
//! which host is held for a request that has waited too long.
//!
//! The policy, in order of precedence:
//! 1. First come, first served within a queue (`line_seq`; an admin may
//!    move a request to the front).
//! 2. A request over its owner's per-user limit waits with that reason and
//!    does not block those behind it.
//! 3. Smaller requests behind a request that does not fit may be placed
//!    first (backfill), so GPUs do not sit idle behind a big request...
//! 4. ...until that request has waited `hold_after`: then the host closest
//!    to holding it is held for it, and nothing else is placed there until
//!    it runs, expires or is cancelled. One hold per queue at a time, so a
//!    line of big requests cannot freeze a whole queue.
//!
//! No fair-share reordering: per-user limits already bound one person's
//! share, and a strict order keeps positions and estimates honest (a
//! request never moves back).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

// The value types live in a leaf the store reads them into; `Ask` is also
// named here by the API's callers (`line::policy::Ask`).
pub use crate::lineup::Ask;
use crate::lineup::{gpus, HostCap, Limit, Release, Usage, Waiter};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Reserve on this host (the database still has the last word).
    Place {
        host: i64,
    },
    Wait {
        reason: String,
    },
}

/// A pass's decisions: one verdict per waiter in line order, and the hold
/// that stands after the pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub verdicts: Vec<(Uuid, Verdict)>,
    /// (holder, host).
    pub hold: Option<(Uuid, i64)>,
}

pub struct Rules<'a> {
    pub queue: &'a str,
    pub hold_after: Duration,
    /// An owner's limits; owners not listed have the queue's.
    pub limits: &'a HashMap<String, Limit>,
    pub default_limit: Limit,
}

impl Rules<'_> {
    fn limit_of(&self, owner: &str) -> Limit {
        self.limits
            .get(owner)
            .copied()
            .unwrap_or(self.default_limit)
    }

    /// Why the owner's limit keeps this request waiting, if it does.
    pub fn over_limit(&self, owner: &str, used: Usage, ask: &Ask) -> Option<String> {
        let limit = self.limit_of(owner);
        if let Some(max) = limit.max_gpus {
            if ask.gpus > 0 && used.gpus + ask.gpus > max {
                return Some(format!(
                    "over your limit of {} in {} ({} in use)",
                    gpus(max),
                    self.queue,
                    used.gpus
                ));
            }
        }
        if let Some(max) = limit.max_vessels {
            if used.vessels + 1 > max {
                return Some(format!(
                    "over your limit of {max} vessel{} in {} ({} running)",
                    if max == 1 { "" } else { "s" },
                    self.queue,
                    used.vessels
                ));
            }
        }
        None
    }

    /// Why a request that cannot run ever, whatever frees up, is refused:
    /// alone over the owner's limit.
    pub fn never_within_limit(&self, owner: &str, ask: &Ask) -> Option<String> {
        let limit = self.limit_of(owner);
        match (limit.max_gpus, limit.max_vessels) {
            (Some(max), _) if ask.gpus > max => Some(format!(
                "asks for {} but your limit in {} is {}",
                gpus(ask.gpus),
                self.queue,
                gpus(max)
            )),
            (_, Some(0)) => Some(format!("your limit in {} is 0 vessels", self.queue)),
            _ => None,
        }
    }
}

/// Decides a pass. `hosts` and `usage` are updated as if the placements
/// happened, so each later request sees what the earlier ones left.
pub fn plan(
    rules: &Rules<'_>,
    hosts: &mut [HostCap],
    waiters: &[Waiter],
    usage: &mut HashMap<String, Usage>,
    now: DateTime<Utc>,
) -> Plan {
    let mut hold = current_hold(hosts, waiters);
    let mut verdicts = Vec::with_capacity(waiters.len());
    // A long line on a full fleet is mostly requests that fit nowhere: the
    // most any usable host has free rejects them without a scan, and their
    // reasons repeat, so both are kept until a placement changes the hosts.
    let mut room = Room::of(hosts);
    let mut reasons: HashMap<(Ask, Option<i64>), String> = HashMap::new();
    for w in waiters {
        let used = usage.get(&w.owner_id).copied().unwrap_or_default();
        if let Some(reason) = rules.over_limit(&w.owner_id, used, &w.ask) {
            verdicts.push((w.id, Verdict::Wait { reason }));
            continue;
        }
        let excluded = hold.filter(|(holder, _)| *holder != w.id).map(|(_, h)| h);
        let fit = if room.may_fit(&w.ask) {
            w.home
                .and_then(|home| best_fit(hosts, &w.ask, excluded, Some(home)))
                .or_else(|| best_fit(hosts, &w.ask, excluded, w.pin))
        } else {
            None
        };
        if let Some(host) = fit {
            let h = &mut hosts[host];
            h.free_gpus -= w.ask.gpus;
            h.free_cores -= w.ask.cpus;
            h.free_memory -= w.ask.memory;
            let placed_on = h.id;
            room = Room::of(hosts);
            reasons.clear();
            let u = usage.entry(w.owner_id.clone()).or_default();
            u.gpus += w.ask.gpus;
            u.vessels += 1;
            if hold.is_some_and(|(holder, _)| holder == w.id) {
                hold = None;
            }
            verdicts.push((w.id, Verdict::Place { host: placed_on }));
            continue;
        }
        let waited = (now - w.queued_at).to_std().unwrap_or_default();
        if hold.is_none() && waited >= rules.hold_after {
            hold = pick_hold(hosts, &w.ask, w.pin).map(|host| (w.id, host));
        }
        let mut reason = match w.pin {
            Some(pin) => why_waiting_on(hosts, &w.ask, pin),
            None => reasons
                .entry((w.ask, excluded))
                .or_insert_with(|| why_waiting(rules.queue, hosts, &w.ask, excluded))
                .clone(),
        };
        if let Some((holder, host)) = hold {
            if holder == w.id {
                reason = format!("{reason}; {} is held for it", host_name(hosts, host));
            }
        }
        verdicts.push((w.id, Verdict::Wait { reason }));
    }
    Plan { verdicts, hold }
}

/// The most any usable host has free, per dimension: a request over any
/// of them fits nowhere.
struct Room {
    gpus: i64,
    cores: i64,
    memory: i64,
}

impl Room {
    fn of(hosts: &[HostCap]) -> Room {
        let usable = || hosts.iter().filter(|h| h.usable());
        Room {
            gpus: usable().map(|h| h.free_gpus).max().unwrap_or(-1),
            cores: usable().map(|h| h.free_cores).max().unwrap_or(-1),
            memory: usable().map(|h| h.free_memory).max().unwrap_or(-1),
        }
    }

    fn may_fit(&self, ask: &Ask) -> bool {
        ask.gpus <= self.gpus && ask.cpus <= self.cores && ask.memory <= self.memory
    }
}

/// Places near the head are told at every move.
pub const TELL_EVERY_MOVE: i32 = 20;

/// Whether a request last told it was at `told` should hear it is now at
/// `now`: always near the head, and further back each time its place has
/// halved (#2000 hears of 1000, 500, 250, …). A line of thousands then costs
/// a placement about twenty messages, not thousands of DM edits.
pub fn worth_telling(told: Option<i32>, now: i32) -> bool {
    match told {
        None => true,
        Some(told) if told == now => false,
        Some(told) => now <= TELL_EVERY_MOVE || now > told || now <= told / 2,
    }
}

/// The standing hold, if its host can still ever take its request.
fn current_hold(hosts: &[HostCap], waiters: &[Waiter]) -> Option<(Uuid, i64)> {
    waiters.iter().find_map(|w| {
        let host = w.held_host?;
        hosts
            .iter()
            .find(|h| h.id == host && h.usable() && h.could_ever_fit(&w.ask))
            .map(|_| (w.id, host))
    })
}

/// The host left with the least room after the request (best fit), as the
/// reservation statement orders them; the index into `hosts`.
fn best_fit(
    hosts: &[HostCap],
    ask: &Ask,
    excluded: Option<i64>,
    pin: Option<i64>,
) -> Option<usize> {
    hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| pin.is_none_or(|p| p == h.id))
        .filter(|(_, h)| h.usable() && Some(h.id) != excluded && h.fits_now(ask))
        .min_by(|(_, a), (_, b)| {
            (
                a.free_gpus - ask.gpus,
                a.free_cores - ask.cpus,
                a.free_memory - ask.memory,
                &a.name,
            )
                .cmp(&(
                    b.free_gpus - ask.gpus,
                    b.free_cores - ask.cpus,
                    b.free_memory - ask.memory,
                    &b.name,
                ))
        })
        .map(|(i, _)| i)
}

/// The host closest to taking the request: of those that could hold it
/// when empty, the one with the most free now.
fn pick_hold(hosts: &[HostCap], ask: &Ask, pin: Option<i64>) -> Option<i64> {
    hosts
        .iter()
        .filter(|h| pin.is_none_or(|p| p == h.id))
        .filter(|h| h.usable() && h.could_ever_fit(ask))
        .max_by(|a, b| {
            (
                a.free_gpus,
                a.free_cores,
                a.free_memory,
                std::cmp::Reverse(&a.name),
            )
                .cmp(&(
                    b.free_gpus,
                    b.free_cores,
                    b.free_memory,
                    std::cmp::Reverse(&b.name),
                ))
        })
        .map(|h| h.id)
}

fn host_name(hosts: &[HostCap], id: i64) -> &str {
    hosts
        .iter()
        .find(|h| h.id == id)
        .map(|h| h.name.as_str())
        .unwrap_or("a host")
}

/// The reason in words, from the most basic cause down.
pub fn why_waiting(queue: &str, hosts: &[HostCap], ask: &Ask, excluded: Option<i64>) -> String {
    let usable: Vec<&HostCap> = hosts.iter().filter(|h| h.usable()).collect();
    if hosts.is_empty() {
        return format!("queue {queue} has no hosts");
    }
    if usable.is_empty() {
        return match hosts {
            [only] => format!(
                "host {} is {}",
                only.name,
                if only.online { "drained" } else { "offline" }
            ),
            _ => format!("every host of {queue} is offline or drained"),
        };
    }
    let open: Vec<&&HostCap> = usable.iter().filter(|h| Some(h.id) != excluded).collect();
    let held = excluded.map(|id| host_name(hosts, id).to_string());
    if let Some(held) = &held {
        if open.iter().all(|h| !h.fits_now(ask)) && usable.iter().any(|h| h.fits_now(ask)) {
            return format!("{held} is held for a request that has waited longer");
        }
    }
    if ask.gpus > 0 && !open.iter().any(|h| h.free_gpus >= ask.gpus) {
        return format!("no host has {} free in {queue}", gpus(ask.gpus));
    }
    format!("no host has {} free together in {queue}", ask.describe())
}

/// Why a wake waits: its disk is on one host, and that host is full (or
/// cannot take vessels now).
pub fn why_waiting_on(hosts: &[HostCap], ask: &Ask, pin: i64) -> String {
    let name = host_name(hosts, pin);
    match hosts.iter().find(|h| h.id == pin) {
        Some(h) if !h.online => format!("{name}, where its disk is, is offline"),
        Some(h) if !h.active => format!("{name}, where its disk is, is drained"),
        Some(_) => format!(
            "waiting for {} on {name}, where its disk is",
            ask.describe()
        ),
        None => "its disk's host is not in this queue any more".to_string(),
    }
}

/// The largest host of a queue as "gpu-3 (8 GPUs, 64 cores and 512G)", for
/// refusing a request no host could ever hold.
pub fn largest(hosts: &[HostCap]) -> Option<String> {
    hosts
        .iter()
        .max_by_key(|h| (h.gpus, h.cores, h.memory))
        .map(|h| {
            let ask = Ask {
                gpus: h.gpus,
                cpus: h.cores,
                memory: h.memory,
            };
            format!("{} ({})", h.name, ask.describe())
        })
}

/// When enough frees up for `ask` by the lifetimes of what holds the
/// queue's hosts: the earliest over hosts that could ever take it, with how
/// many vessels must end first. None when it fits already (it waits for
/// another reason) or no host could take it. `releases` are sorted by
/// expiry.
pub fn estimate(
    hosts: &[HostCap],
    releases: &HashMap<i64, Vec<Release>>,
    ask: &Ask,
) -> Option<(DateTime<Utc>, String, u32)> {
    let mut best: Option<(DateTime<Utc>, String, u32)> = None;
    for h in hosts.iter().filter(|h| h.usable() && h.could_ever_fit(ask)) {
        if h.fits_now(ask) {
            return None;
        }
        let mut free = (h.free_gpus, h.free_cores, h.free_memory);
        let ending = releases.get(&h.id).map(Vec::as_slice).unwrap_or_default();
        for (n, r) in ending.iter().enumerate() {
            free = (free.0 + r.gpus, free.1 + r.cpus, free.2 + r.memory);
            if free.0 >= ask.gpus && free.1 >= ask.cpus && free.2 >= ask.memory {
                if best.as_ref().is_none_or(|(t, _, _)| r.expires_at < *t) {
                    best = Some((r.expires_at, h.name.clone(), n as u32 + 1));
                }
                break;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: i64 = 1 << 30;

    fn host(id: i64, gpus: i64, free: i64) -> HostCap {
        HostCap {
            id,
            name: format!("gpu-{id}"),
            active: true,
            online: true,
            gpus,
            cores: 64,
            memory: 512 * G,
            free_gpus: free,
            free_cores: 64,
            free_memory: 512 * G,
        }
    }

    fn ask(gpus: i64) -> Ask {
        Ask {
            gpus,
            cpus: 4,
            memory: 16 * G,
        }
    }

    fn waiter(n: u128, owner: &str, gpus: i64, age_min: i64, now: DateTime<Utc>) -> Waiter {
        Waiter {
            id: Uuid::from_u128(n),
            owner_id: owner.into(),
            ask: ask(gpus),
            queued_at: now - chrono::Duration::minutes(age_min),
            held_host: None,
            pin: None,
            home: None,
        }
    }

    fn rules(limits: &HashMap<String, Limit>) -> Rules<'_> {
        Rules {
            queue: "3090",
            hold_after: Duration::from_secs(3600),
            limits,
            default_limit: Limit::default(),
        }
    }

    fn placed(plan: &Plan) -> Vec<u128> {
        plan.verdicts
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Place { .. }))
            .map(|(id, _)| id.as_u128())
            .collect()
    }

    #[test]
    fn first_come_first_served_and_smaller_ones_fill_in() {
        let now = Utc::now();
        let mut hosts = vec![host(1, 8, 2)];
        let waiters = vec![
            waiter(1, "a", 1, 3, now),
            waiter(2, "b", 4, 2, now),
            waiter(3, "c", 1, 1, now),
            waiter(4, "d", 1, 0, now),
        ];
        let limits = HashMap::new();
        let plan = plan(
            &rules(&limits),
            &mut hosts,
            &waiters,
            &mut HashMap::new(),
            now,
        );
        assert_eq!(
            placed(&plan),
            vec![1, 3],
            "2 GPUs: the first, then a backfill"
        );
        assert_eq!(
            plan.verdicts[1].1,
            Verdict::Wait {
                reason: "no host has 4 GPUs free in 3090".into()
            }
        );
        assert_eq!(hosts[0].free_gpus, 0);
    }

    #[test]
    fn over_limit_waits_without_blocking_the_line() {
        let now = Utc::now();
        let mut hosts = vec![host(1, 8, 8)];
        let limits = HashMap::from([(
            "a".to_string(),
            Limit {
                max_gpus: Some(4),
                max_vessels: None,
            },
        )]);
        let mut usage = HashMap::from([(
            "a".to_string(),
            Usage {
                gpus: 4,
                vessels: 4,
            },
        )]);
        let waiters = vec![waiter(1, "a", 1, 2, now), waiter(2, "b", 1, 1, now)];
        let plan = plan(&rules(&limits), &mut hosts, &waiters, &mut usage, now);
        assert_eq!(placed(&plan), vec![2]);
        assert_eq!(
            plan.verdicts[0].1,
            Verdict::Wait {
                reason: "over your limit of 4 GPUs in 3090 (4 in use)".into()
            }
        );
    }

    #[test]
    fn a_long_wait_at_the_head_holds_a_host_against_backfill() {
        let now = Utc::now();
        let limits = HashMap::new();
        let mut hosts = vec![host(1, 4, 1), host(2, 4, 2)];
        let mut waiters = vec![waiter(1, "big", 4, 61, now), waiter(2, "small", 1, 1, now)];
        let first = plan(
            &rules(&limits),
            &mut hosts.clone(),
            &waiters,
            &mut HashMap::new(),
            now,
        );
        assert_eq!(
            first.hold,
            Some((Uuid::from_u128(1), 2)),
            "the host closest to fitting"
        );
        assert_eq!(placed(&first), vec![2]);
        let Verdict::Place { host } = first.verdicts[1].1 else {
            panic!()
        };
        assert_eq!(host, 1, "the small one goes elsewhere");

        // Next pass: the held host frees up a GPU; the small request may not take it.
        waiters[0].held_host = Some(2);
        waiters[1] = waiter(3, "small", 1, 0, now);
        hosts[0].free_gpus = 0;
        hosts[1].free_gpus = 3;
        let second = plan(
            &rules(&limits),
            &mut hosts.clone(),
            &waiters,
            &mut HashMap::new(),
            now,
        );
        assert!(placed(&second).is_empty());
        assert_eq!(
            second.verdicts[1].1,
            Verdict::Wait {
                reason: "gpu-2 is held for a request that has waited longer".into()
            }
        );
        // And when it has room, the holder gets it and the hold ends.
        hosts[1].free_gpus = 4;
        let third = plan(
            &rules(&limits),
            &mut hosts,
            &waiters,
            &mut HashMap::new(),
            now,
        );
        assert_eq!(placed(&third), vec![1]);
        assert_eq!(third.hold, None);
    }

    #[test]
    fn reasons_name_drained_offline_and_missing_hosts() {
        let a = ask(2);
        assert_eq!(
            why_waiting("3090", &[], &a, None),
            "queue 3090 has no hosts"
        );
        let mut drained = host(3, 8, 8);
        drained.active = false;
        assert_eq!(
            why_waiting("3090", &[drained.clone()], &a, None),
            "host gpu-3 is drained"
        );
        let mut offline = host(4, 8, 8);
        offline.online = false;
        assert_eq!(
            why_waiting("3090", &[drained, offline], &a, None),
            "every host of 3090 is offline or drained"
        );
        let mut tight = host(5, 8, 8);
        tight.free_memory = G;
        assert_eq!(
            why_waiting("3090", &[tight], &a, None),
            "no host has 2 GPUs, 4 cores and 16G free together in 3090"
        );
    }

    #[test]
    fn far_back_places_are_told_when_they_halve() {
        assert!(worth_telling(None, 2000));
        assert!(!worth_telling(Some(2000), 1999));
        assert!(worth_telling(Some(2000), 1000));
        assert!(!worth_telling(Some(1000), 501));
        assert!(worth_telling(Some(30), 20), "near the head, every move");
        assert!(worth_telling(Some(5), 4));
        assert!(!worth_telling(Some(4), 4));
        assert!(
            worth_telling(Some(40), 41),
            "moved back: an admin moved someone ahead"
        );
    }

    #[test]
    fn estimates_come_from_lifetimes_only() {
        let now = Utc::now();
        let hosts = vec![host(1, 4, 0)];
        let at = |h| now + chrono::Duration::hours(h);
        let rel = |h, gpus| Release {
            expires_at: at(h),
            gpus,
            cpus: 0,
            memory: 0,
        };
        let releases = HashMap::from([(1, vec![rel(2, 1), rel(5, 1), rel(9, 2)])]);
        assert_eq!(
            estimate(&hosts, &releases, &ask(2)),
            Some((at(5), "gpu-1".to_string(), 2))
        );
        assert_eq!(
            estimate(&hosts, &releases, &ask(8)),
            None,
            "no host is that big"
        );
        assert_eq!(
            estimate(&hosts, &HashMap::new(), &ask(1)),
            None,
            "nothing ends"
        );
    }
}
