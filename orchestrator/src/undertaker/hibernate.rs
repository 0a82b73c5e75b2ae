//! The undertaker's rules for queues whose idle action is `hibernate`,
//! decided without I/O. Hibernation loses no file, so idle time counts
//! around the clock (work hours protect nothing worth protecting) and the
//! marks are short: warned `warn_before` ahead, hibernated at
//! `hibernate_after`. Idle means both the GPUs (DCGM) and the vessel's own
//! processes (its cgroup's CPU time), since hibernating ends every process:
//! a CPU-bound job on a GPU vessel is not idle, and missing data is never
//! idle. A sleeper is buried `bury_hibernated_after` from when it went to
//! sleep, warned a day ahead.

use std::time::Duration;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Decision, Ledger, Usage, Verdict};
use crate::config::{Config, IdleAction};

/// Each queue's rules, from the config.
pub fn rules_of(config: &Config) -> HashMap<String, QueueRules> {
    config
        .queues
        .iter()
        .map(|(name, q)| {
            let rules = QueueRules {
                hibernates: q.idle_action == IdleAction::Hibernate,
                policy: SleepPolicy {
                    hibernate_after: q.hibernate_after.duration(),
                    warn_before: q.warn_before.duration(),
                    bury_after: q.bury_hibernated_after.duration(),
                    expiry_warning: config.undertaker.expiry_warning.duration(),
                },
                max_hibernated: q.max_hibernated,
            };
            (name.clone(), rules)
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
pub struct SleepPolicy {
    pub hibernate_after: Duration,
    pub warn_before: Duration,
    pub bury_after: Duration,
    /// Warn this long before a vessel's lifetime ends (the undertaker's).
    pub expiry_warning: Duration,
}

/// A queue's rules for the undertaker: whether it hibernates idle vessels,
/// when, and how many sleepers a person keeps.
#[derive(Debug, Clone, Copy)]
pub struct QueueRules {
    pub hibernates: bool,
    pub policy: SleepPolicy,
    pub max_hibernated: u32,
}

impl SleepPolicy {
    fn warn_at(&self) -> f64 {
        self.hibernate_after
            .saturating_sub(self.warn_before)
            .as_secs_f64()
    }
}

/// Idle only when every measure says idle; busy when any says busy.
pub fn both(gpu: Usage, cpu: Usage) -> Usage {
    match (gpu, cpu) {
        (Usage::Busy, _) | (_, Usage::Busy) => Usage::Busy,
        (Usage::Idle, Usage::Idle) => Usage::Idle,
        _ => Usage::Unknown,
    }
}

/// What to do with one running vessel of a hibernating queue.
pub fn decide(ledger: &Ledger, usage: Usage, now: DateTime<Utc>, p: &SleepPolicy) -> Decision {
    if ledger.expired(now) {
        return Decision {
            verdict: Verdict::Expire,
            idle_secs: ledger.idle_secs,
            warn_expiry: false,
        };
    }
    let warn_expiry = super::expiry_due(ledger, now, p.expiry_warning);
    let nothing = |verdict, idle_secs| Decision {
        verdict,
        idle_secs,
        warn_expiry,
    };
    let kept = ledger.keep_until.is_some_and(|k| k > now);
    let idle = match (usage, kept) {
        (Usage::Busy, _) | (Usage::Idle, true) => return nothing(Verdict::Reset, 0.0),
        (Usage::Unknown, _) => ledger.idle_secs,
        (Usage::Idle, false) => {
            let since = ledger
                .last_sweep_at
                .map_or(0, |last| (now - last).num_seconds().max(0));
            ledger.idle_secs + since as f64
        }
    };
    match ledger.warned_at {
        None if idle >= p.warn_at() => nothing(Verdict::Warn, idle),
        // Never hibernated unwarned, and never sooner than `warn_before`
        // after the warning, whatever gap the sweeps left.
        Some(warned)
            if idle >= p.hibernate_after.as_secs_f64()
                && now - warned
                    >= chrono::Duration::from_std(p.warn_before).unwrap_or_default() =>
        {
            nothing(Verdict::Hibernate, idle)
        }
        _ => nothing(Verdict::Nothing, idle),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sleeper {
    Nothing,
    /// A day before its burial: its owner is told (Wake / Kill).
    WarnBurial,
    /// Asleep `bury_after`, and warned: buried.
    Bury,
}

/// What to do with a hibernated vessel.
pub fn decide_sleeper(
    hibernated_at: DateTime<Utc>,
    burial_warned_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    p: &SleepPolicy,
) -> Sleeper {
    let bury_at = hibernated_at + chrono::Duration::from_std(p.bury_after).unwrap_or_default();
    let day = chrono::Duration::days(1);
    match burial_warned_at {
        Some(warned) if now >= bury_at && now - warned >= day => Sleeper::Bury,
        Some(_) => Sleeper::Nothing,
        None if now >= bury_at - day => Sleeper::WarnBurial,
        None => Sleeper::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(hhmm: &str) -> DateTime<Utc> {
        format!("2026-12-05T{hhmm}:00Z").parse().unwrap()
    }

    fn policy() -> SleepPolicy {
        SleepPolicy {
            hibernate_after: Duration::from_secs(3600),
            warn_before: Duration::from_secs(900),
            bury_after: Duration::from_secs(14 * 86_400),
            expiry_warning: Duration::from_secs(86_400),
        }
    }

    fn ledger(last: &str, idle_min: f64, warned: Option<&str>) -> Ledger {
        Ledger {
            expires_at: "2027-01-01T00:00:00Z".parse().unwrap(),
            idle_secs: idle_min * 60.0,
            last_sweep_at: Some(t(last)),
            warned_at: warned.map(t),
            keep_until: None,
            expiry_warned_at: None,
        }
    }

    #[test]
    fn an_idle_vessel_is_warned_then_hibernated_around_the_clock() {
        use Usage::*;
        use Verdict::*;
        let p = policy();
        #[rustfmt::skip]
        let cases: Vec<(&str, Ledger, Usage, &str, Verdict)> = vec![
            ("idle 40 minutes at night: nothing yet", ledger("02:00", 0.0, None), Idle, "02:40", Nothing),
            ("idle 45 minutes: warned", ledger("02:00", 0.0, None), Idle, "02:45", Warn),
            ("unknown use never counts", ledger("02:00", 30.0, None), Unknown, "03:00", Nothing),
            ("busy resets", ledger("02:00", 50.0, Some("02:45")), Busy, "02:50", Reset),
            ("an hour, warned 15 minutes ago: hibernated", ledger("02:45", 45.0, Some("02:45")), Idle, "03:00", Hibernate),
            ("an hour, but warned just now: not yet", ledger("02:00", 60.0, Some("02:55")), Idle, "03:00", Nothing),
            ("both marks at once after a gap: warned, not hibernated", ledger("00:00", 0.0, None), Idle, "05:00", Warn),
        ];
        for (story, ledger, usage, now, verdict) in cases {
            assert_eq!(
                decide(&ledger, usage, t(now), &p).verdict,
                verdict,
                "{story}"
            );
        }
        let kept = Ledger {
            keep_until: Some(t("09:00")),
            ..ledger("02:00", 59.0, Some("02:45"))
        };
        assert_eq!(decide(&kept, Idle, t("03:00"), &p).verdict, Reset, "kept");
    }

    #[test]
    fn idle_means_the_gpus_and_the_processes() {
        use Usage::*;
        assert_eq!(both(Idle, Idle), Idle);
        assert_eq!(both(Idle, Busy), Busy, "a CPU-bound job on a GPU vessel");
        assert_eq!(both(Busy, Unknown), Busy);
        assert_eq!(both(Idle, Unknown), Unknown, "missing data is never idle");
    }

    #[test]
    fn a_sleeper_is_warned_a_day_ahead_then_buried() {
        let p = policy();
        let slept: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let day = |d: i64| slept + chrono::Duration::days(d);
        assert_eq!(decide_sleeper(slept, None, day(12), &p), Sleeper::Nothing);
        assert_eq!(
            decide_sleeper(slept, None, day(13), &p),
            Sleeper::WarnBurial
        );
        assert_eq!(
            decide_sleeper(slept, Some(day(13)), day(13), &p),
            Sleeper::Nothing
        );
        assert_eq!(
            decide_sleeper(slept, Some(day(13)), day(14), &p),
            Sleeper::Bury
        );
        // Warned late (the orchestrator was down): a full day still.
        assert_eq!(
            decide_sleeper(slept, None, day(15), &p),
            Sleeper::WarnBurial
        );
        assert_eq!(
            decide_sleeper(slept, Some(day(15)), day(15), &p),
            Sleeper::Nothing
        );
    }
}
