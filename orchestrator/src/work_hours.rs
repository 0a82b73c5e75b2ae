//! Work hours in the team's timezone: idle time only counts inside them.
//! Computed per local day with `chrono-tz`, so a DST change moves the UTC
//! instants of 9:00 and 18:00, never the local hours.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkHoursConfig {
    #[serde(default = "default_tz")]
    pub timezone: String,
    #[serde(default = "default_days")]
    pub days: Vec<String>,
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default = "default_end")]
    pub end: String,
    /// Local dates (`2026-12-25`) that are not work days.
    #[serde(default)]
    pub holidays: Vec<String>,
}

impl Default for WorkHoursConfig {
    fn default() -> Self {
        WorkHoursConfig {
            timezone: default_tz(),
            days: default_days(),
            start: default_start(),
            end: default_end(),
            holidays: Vec::new(),
        }
    }
}

fn default_tz() -> String {
    "UTC".into()
}
fn default_days() -> Vec<String> {
    ["mon", "tue", "wed", "thu", "fri"]
        .map(String::from)
        .to_vec()
}
fn default_start() -> String {
    "09:00".into()
}
fn default_end() -> String {
    "18:00".into()
}

#[derive(Debug, Clone)]
pub struct WorkHours {
    tz: Tz,
    days: Vec<Weekday>,
    start: NaiveTime,
    end: NaiveTime,
    holidays: Vec<NaiveDate>,
}

impl WorkHours {
    /// Errors name the key (`work_hours.start: …`).
    pub fn parse(c: &WorkHoursConfig) -> Result<Self, (String, String)> {
        let tz: Tz = c.timezone.parse().map_err(|_| {
            (
                "work_hours.timezone".to_string(),
                format!("unknown timezone `{}`", c.timezone),
            )
        })?;
        let days = c
            .days
            .iter()
            .map(|d| {
                d.parse::<Weekday>().map_err(|_| {
                    (
                        "work_hours.days".to_string(),
                        format!("`{d}` is not a weekday"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time = |key: &str, v: &str| {
            NaiveTime::parse_from_str(v, "%H:%M")
                .map_err(|_| (format!("work_hours.{key}"), format!("`{v}` is not HH:MM")))
        };
        let start = time("start", &c.start)?;
        let end = time("end", &c.end)?;
        if end <= start {
            return Err(("work_hours.end".into(), "must be after start".into()));
        }
        let holidays = c
            .holidays
            .iter()
            .map(|h| {
                NaiveDate::parse_from_str(h, "%Y-%m-%d").map_err(|_| {
                    (
                        "work_hours.holidays".to_string(),
                        format!("`{h}` is not YYYY-MM-DD"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WorkHours {
            tz,
            days,
            start,
            end,
            holidays,
        })
    }

    /// The UTC instants of a local time on a local date; on a DST gap the
    /// first valid instant after it.
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let local = date.and_time(time);
        match self.tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
            chrono::LocalResult::None => self
                .tz
                .from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&local)),
        }
    }

    fn is_work_day(&self, date: NaiveDate) -> bool {
        self.days.contains(&date.weekday()) && !self.holidays.contains(&date)
    }

    /// How much of [from, to) lies inside work hours.
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let mut total = Duration::zero();
        let mut day = from.with_timezone(&self.tz).date_naive();
        let last = to.with_timezone(&self.tz).date_naive();
        while day <= last {
            if self.is_work_day(day) {
                let (s, e) = (self.instant(day, self.start), self.instant(day, self.end));
                let (a, b) = (s.max(from), e.min(to));
                if b > a {
                    total += b - a;
                }
            }
            day = day.succ_opt().unwrap_or(last + Duration::days(1));
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> WorkHours {
        WorkHours::parse(&WorkHoursConfig {
            timezone: "Europe/Berlin".into(),
            holidays: vec!["2026-12-25".into()],
            ..WorkHoursConfig::default()
        })
        .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn only_weekday_office_hours_count() {
        let w = berlin();
        // Friday 08:00 UTC (09:00 CET) to Monday 08:00 UTC: Friday's 9 hours.
        assert_eq!(
            w.between(utc("2026-11-27T08:00:00Z"), utc("2026-11-30T08:00:00Z")),
            Duration::hours(9)
        );
        // A whole weekend: nothing.
        assert_eq!(
            w.between(utc("2026-11-28T00:00:00Z"), utc("2026-11-30T00:00:00Z")),
            Duration::zero()
        );
        // A holiday: nothing.
        assert_eq!(
            w.between(utc("2026-12-25T00:00:00Z"), utc("2026-12-26T00:00:00Z")),
            Duration::zero()
        );
    }

    #[test]
    fn dst_moves_the_utc_instants_not_the_local_hours() {
        let w = berlin();
        // Berlin leaves summer time on Sunday 2026-10-25: Friday 9–18 is
        // 07:00–16:00 UTC, Monday 9–18 is 08:00–17:00 UTC.
        assert_eq!(
            w.between(utc("2026-10-23T06:00:00Z"), utc("2026-10-23T07:00:00Z")),
            Duration::zero()
        );
        assert_eq!(
            w.between(utc("2026-10-23T07:00:00Z"), utc("2026-10-23T16:00:00Z")),
            Duration::hours(9)
        );
        assert_eq!(
            w.between(utc("2026-10-26T07:00:00Z"), utc("2026-10-26T08:00:00Z")),
            Duration::zero()
        );
        assert_eq!(
            w.between(utc("2026-10-26T08:00:00Z"), utc("2026-10-26T17:00:00Z")),
            Duration::hours(9)
        );
        // Across the DST weekend: exactly Friday's and Monday's 9 hours.
        assert_eq!(
            w.between(utc("2026-10-23T00:00:00Z"), utc("2026-10-27T00:00:00Z")),
            Duration::hours(18)
        );
    }

    #[test]
    fn bad_config_names_the_key() {
        let bad = WorkHoursConfig {
            start: "9am".into(),
            ..WorkHoursConfig::default()
        };
        assert_eq!(WorkHours::parse(&bad).unwrap_err().0, "work_hours.start");
        let bad = WorkHoursConfig {
            timezone: "Mars/Olympus".into(),
            ..WorkHoursConfig::default()
        };
        assert_eq!(WorkHours::parse(&bad).unwrap_err().0, "work_hours.timezone");
    }
}
