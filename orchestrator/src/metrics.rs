//! `/metrics` in the Prometheus text format: provisioning latency, time in
//! line, vessels by state and requests waiting per queue. Small enough to
//! write by hand.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::api::error::ApiError;
use crate::api::AppState;

/// A histogram of seconds with fixed buckets, lock-free.
struct Histogram {
    buckets: &'static [f64],
    counts: [AtomicU64; 12],
    total: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new(buckets: &'static [f64]) -> Self {
        Histogram {
            buckets,
            counts: [const { AtomicU64::new(0) }; 12],
            total: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, secs: f64) {
        for (i, bound) in self.buckets.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in self.buckets.iter().enumerate() {
            let n = self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let total = self.total.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {sum}\n{name}_count {total}"
        );
    }
}

static PROVISION: Histogram =
    Histogram::new(&[0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]);
/// Seconds to a day: a line can be short or long.
static IN_LINE: Histogram = Histogram::new(&[
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
]);

pub fn provisioned(elapsed: Duration) {
    PROVISION.observe(elapsed.as_secs_f64());
}

/// A request placed from the line after waiting `secs`.
pub fn placed_from_line(secs: f64) {
    IN_LINE.observe(secs);
}

pub async fn render(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut out = String::new();
    PROVISION.render(
        &mut out,
        "vessel_provision_seconds",
        "From placement to sshd answering.",
    );
    IN_LINE.render(
        &mut out,
        "vessel_line_wait_seconds",
        "Time in line of requests placed from it (its count: placements from the line).",
    );
    let states = crate::store::vessels::count_by_state(&state.db).await?;
    out.push_str("# HELP vessel_vessels Vessels by state.\n# TYPE vessel_vessels gauge\n");
    for (name, n) in states {
        let _ = writeln!(out, "vessel_vessels{{state=\"{name}\"}} {n}");
    }
    let lines = crate::store::line::lines(&state.db).await?;
    out.push_str("# HELP vessel_line_waiting Requests waiting in line, per queue.\n# TYPE vessel_line_waiting gauge\n");
    for queue in state.config.queues.keys() {
        let n = lines
            .iter()
            .find(|l| &l.queue == queue)
            .map_or(0, |l| l.waiting);
        let _ = writeln!(out, "vessel_line_waiting{{queue=\"{queue}\"}} {n}");
    }
    render_watchdog(&mut out);
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// Host probes by result (survey and watchdog), and GPU incidents opened
/// and closed by the GPU watchdog.
static HOST_PROBES: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static GPU_INCIDENTS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

pub fn host_probed(ok: bool) {
    HOST_PROBES[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
}

/// A GPU incident opened (true) or closed (false).
pub fn gpu_incident(opened: bool) {
    GPU_INCIDENTS[usize::from(!opened)].fetch_add(1, Ordering::Relaxed);
}

fn render_watchdog(out: &mut String) {
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP vessel_host_probes_total Host probes over SSH, by result.\n# TYPE vessel_host_probes_total counter\n\
         vessel_host_probes_total{{result=\"ok\"}} {}\nvessel_host_probes_total{{result=\"failed\"}} {}",
        n(&HOST_PROBES[0]),
        n(&HOST_PROBES[1])
    );
    let _ = writeln!(
        out,
        "# HELP vessel_gpu_incidents_total GPU metric incidents (DCGM series stale), opened and closed.\n# TYPE vessel_gpu_incidents_total counter\n\
         vessel_gpu_incidents_total{{event=\"opened\"}} {}\nvessel_gpu_incidents_total{{event=\"closed\"}} {}",
        n(&GPU_INCIDENTS[0]),
        n(&GPU_INCIDENTS[1])
    );
}
