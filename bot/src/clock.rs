//! Time, behind a seam: the bot reads the wall clock only here, for the
//! tokens it mints (issued-at, expiry) and for "waiting for 20 min" in the
//! line's messages, so tests can set the time those depend on.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests set and move.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(t)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("poisoned") = t;
    }

    pub fn advance(&self, d: chrono::Duration) {
        *self.0.lock().expect("poisoned") += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stays_where_it_is_put() {
        let t0 = DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::at(t0);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        assert_eq!(shared.now(), t0);
        clock.advance(chrono::Duration::minutes(20));
        assert_eq!(shared.now(), t0 + chrono::Duration::minutes(20));
        clock.set(t0);
        assert_eq!(shared.now(), t0);
    }
}
