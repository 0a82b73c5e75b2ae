//! `/metrics` in the Prometheus text format: provisioning latency and
//! vessels by state. Small enough to write by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::api::error::ApiError;
use crate::api::AppState;

const BUCKETS: [f64; 10] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0];
static COUNTS: [AtomicU64; 10] = [const { AtomicU64::new(0) }; 10];
static TOTAL: AtomicU64 = AtomicU64::new(0);
static SUM_MICROS: AtomicU64 = AtomicU64::new(0);

pub fn provisioned(elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    for (i, bound) in BUCKETS.iter().enumerate() {
        if secs <= *bound {
            COUNTS[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    TOTAL.fetch_add(1, Ordering::Relaxed);
    SUM_MICROS.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
}

pub async fn render(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut out = String::new();
    out.push_str("# HELP vessel_provision_seconds From placement to sshd answering.\n");
    out.push_str("# TYPE vessel_provision_seconds histogram\n");
    for (i, bound) in BUCKETS.iter().enumerate() {
        out.push_str(&format!(
            "vessel_provision_seconds_bucket{{le=\"{bound}\"}} {}\n",
            COUNTS[i].load(Ordering::Relaxed)
        ));
    }
    let total = TOTAL.load(Ordering::Relaxed);
    out.push_str(&format!(
        "vessel_provision_seconds_bucket{{le=\"+Inf\"}} {total}\n\
         vessel_provision_seconds_sum {}\n\
         vessel_provision_seconds_count {total}\n",
        SUM_MICROS.load(Ordering::Relaxed) as f64 / 1e6
    ));
    let states = crate::store::vessels::count_by_state(&state.db).await?;
    out.push_str("# HELP vessel_vessels Vessels by state.\n# TYPE vessel_vessels gauge\n");
    for (name, n) in states {
        out.push_str(&format!("vessel_vessels{{state=\"{name}\"}} {n}\n"));
    }
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
