//! Cron expressions with seconds, as tokio-cron-scheduler reads them: the
//! type the config checks its schedules with and the scheduler names its
//! ticks by, and the older interval keys turned into one. A leaf: it
//! imports nothing of the crate.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use croner::parser::{CronParser, Seconds};

/// A cron expression with seconds (`sec min hour dom month dow`), parsed
/// as tokio-cron-scheduler parses it.
#[derive(Debug, Clone)]
pub struct Cron(croner::Cron);

#[derive(Debug, thiserror::Error)]
#[error(
    "not a cron expression with seconds (`sec min hour day month weekday`, e.g. `0 */30 * * * *`)"
)]
pub struct CronError(#[source] croner::errors::CronError);

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(expr)
            .map(Cron)
            .map_err(CronError)
    }

    /// The tick a run that starts at `now` belongs to: the latest scheduled
    /// instant at or before it. The scheduler fires at or after a tick
    /// (it polls twice a second), never before, so every replica names
    /// the same tick.
    pub fn tick_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Ticks are whole seconds; croner would keep the fraction.
        let now = now.with_nanosecond(0)?;
        self.0.find_previous_occurrence(&now, true).ok()
    }

    /// The first scheduled instant after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_next_occurrence(&now, false).ok()
    }
}

/// An interval as a cron expression, when it divides a minute, an hour or
/// a day evenly (`30m` → `0 */30 * * * *`); the older `every` keys.
pub fn cron_for_interval(every: Duration) -> Option<String> {
    let s = every.as_secs();
    if s == 0 || every.subsec_nanos() != 0 {
        return None;
    }
    if s < 60 && 60_u64.is_multiple_of(s) {
        return Some(format!("*/{s} * * * * *"));
    }
    let m = s / 60;
    if s.is_multiple_of(60) && m < 60 && 60_u64.is_multiple_of(m) {
        return Some(format!("0 */{m} * * * *"));
    }
    let h = s / 3600;
    if s.is_multiple_of(3600) && h < 24 && 24_u64.is_multiple_of(h) {
        return Some(format!("0 0 */{h} * * *"));
    }
    (s == 86_400).then(|| "0 0 0 * * *".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_become_schedules_when_they_divide_evenly() {
        let cases = [
            (1, Some("*/1 * * * * *")),
            (15, Some("*/15 * * * * *")),
            (60, Some("0 */1 * * * *")),
            (300, Some("0 */5 * * * *")),
            (1800, Some("0 */30 * * * *")),
            (3600, Some("0 0 */1 * * *")),
            (86_400, Some("0 0 0 * * *")),
            (7, None),
            (90, None),
            (7 * 3600, None),
            (0, None),
        ];
        for (secs, expected) in cases {
            let got = cron_for_interval(Duration::from_secs(secs));
            assert_eq!(got.as_deref(), expected, "{secs}s");
            if let Some(expr) = got {
                Cron::parse(&expr).unwrap();
            }
        }
    }

    #[test]
    fn a_run_belongs_to_the_tick_before_it() {
        let cron = Cron::parse("0 */30 * * * *").unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // Fired late (the scheduler polls): still the 10:30 tick.
        assert_eq!(
            cron.tick_at(at("2026-11-30T10:30:00.700Z")),
            Some(at("2026-11-30T10:30:00Z"))
        );
        assert_eq!(
            cron.tick_at(at("2026-11-30T10:30:00Z")),
            Some(at("2026-11-30T10:30:00Z"))
        );
        assert_eq!(
            cron.tick_at(at("2026-11-30T10:59:59Z")),
            Some(at("2026-11-30T10:30:00Z"))
        );
        assert!(Cron::parse("*/30 * * * *").is_err(), "five fields");
        assert!(Cron::parse("0 61 * * * *").is_err());
    }
}
