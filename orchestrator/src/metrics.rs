//! `/metrics` in the Prometheus text format. Counted in this process:
//! provisioning latency, time in line of placed requests, burials by
//! reason, idle GPU-hours the undertaker reclaimed, host probes and
//! incidents. Read from the database at each scrape (the same on every
//! replica: aggregate them with `max`, not `sum`): vessels by queue and
//! state, GPUs per queue, requests waiting and the longest wait. Small
//! enough to write by hand.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;

use crate::config::Config;
use crate::store::gauges;

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

/// A counter with one label whose values are known up front: every value
/// is exported from the start, at 0, so a rate over it exists before the
/// first event.
struct LabelledCounter<const N: usize> {
    label: &'static str,
    values: [&'static str; N],
    counts: [AtomicU64; N],
}

impl<const N: usize> LabelledCounter<N> {
    const fn new(label: &'static str, values: [&'static str; N]) -> Self {
        LabelledCounter {
            label,
            values,
            counts: [const { AtomicU64::new(0) }; N],
        }
    }

    fn inc(&self, i: usize) {
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (value, n) in self.values.iter().zip(&self.counts) {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{{}=\"{value}\"}} {n}", self.label);
        }
    }
}

static PROVISION: Histogram =
    Histogram::new(&[0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]);
/// From a wake's placement to sshd answering with the same host key.
static WAKE: Histogram = Histogram::new(&[0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]);
static HIBERNATIONS: LabelledCounter<3> =
    LabelledCounter::new("reason", ["owner", "admin", "idle"]);
static WAKES: LabelledCounter<2> = LabelledCounter::new("where", ["home", "elsewhere"]);
/// GPU-seconds, whole, that sleepers gave back (GPUs × time asleep).
static HIBERNATED_GPU_SECONDS: AtomicU64 = AtomicU64::new(0);
/// Seconds to a day: a line can be short or long.
static IN_LINE: Histogram = Histogram::new(&[
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
]);

/// Why a vessel was sent to its grave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Burial {
    /// Killed by its owner.
    Owner,
    /// Killed by an admin.
    Admin,
    /// Withdrawn while it waited in line (it never ran).
    Cancelled,
    /// Idle past the undertaker's marks.
    Idle,
    /// Its lifetime ended.
    Expired,
    /// Over its queue's `disk` limit after a warning.
    Disk,
}

const BURIAL_REASONS: [&str; 6] = ["owner", "admin", "cancelled", "idle", "expired", "disk"];
static BURIALS: LabelledCounter<6> = LabelledCounter::new("reason", BURIAL_REASONS);
/// GPU-seconds, whole: hours are rendered.
static IDLE_GPU_SECONDS: AtomicU64 = AtomicU64::new(0);
static PROBES: LabelledCounter<2> = LabelledCounter::new("result", ["ok", "failed"]);
static INCIDENTS: AtomicU64 = AtomicU64::new(0);
static GPU_INCIDENTS: LabelledCounter<2> = LabelledCounter::new("event", ["opened", "closed"]);

pub fn provisioned(elapsed: Duration) {
    PROVISION.observe(elapsed.as_secs_f64());
}

/// Why a vessel was sent to sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hibernation {
    Owner = 0,
    Admin = 1,
    Idle = 2,
}

/// A vessel was sent to sleep (its stop is committed); counted where that
/// is decided, once.
pub fn hibernating(why: Hibernation) {
    HIBERNATIONS.inc(why as usize);
}

/// A sleeper woke or was buried after `asleep` with `gpus` GPUs given back.
pub fn slept(gpus: i32, asleep: Duration) {
    let secs = f64::from(gpus.max(0)) * asleep.as_secs_f64();
    HIBERNATED_GPU_SECONDS.fetch_add(secs.round() as u64, Ordering::Relaxed);
}

/// A woken vessel answers again: on its disk's host, or moved elsewhere.
pub fn woke(elapsed: Duration, moved: bool) {
    WAKE.observe(elapsed.as_secs_f64());
    WAKES.inc(usize::from(moved));
}

/// A request placed from the line after waiting `secs`.
pub fn placed_from_line(secs: f64) {
    IN_LINE.observe(secs);
}

/// A vessel's burial was decided (its stop is committed); counted once per
/// vessel, where the decision is made, so a retried teardown counts once.
pub fn buried(reason: Burial) {
    BURIALS.inc(reason as usize);
}

/// The undertaker buried an idle vessel holding `gpus` GPUs after
/// `idle_secs` of idle work-time: the GPU-time it sat on, now handed back.
pub fn reclaimed_idle(gpus: usize, idle_secs: f64) {
    let gpu_secs = gpus as f64 * idle_secs.max(0.0);
    IDLE_GPU_SECONDS.fetch_add(gpu_secs.round() as u64, Ordering::Relaxed);
}

/// One host probed by the survey: it answered with an inventory, or not.
pub fn host_probed(ok: bool) {
    PROBES.inc(if ok { 0 } else { 1 });
}

/// A host stopped answering and an incident was opened for it.
pub fn host_incident() {
    INCIDENTS.fetch_add(1, Ordering::Relaxed);
}

/// A GPU incident (a host's DCGM series went stale) opened (true) or
/// closed (false) by the GPU watchdog.
pub fn gpu_incident(opened: bool) {
    GPU_INCIDENTS.inc(if opened { 0 } else { 1 });
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// What this process counted since it started.
fn render_counted(out: &mut String) {
    PROVISION.render(
        out,
        "vessel_provision_seconds",
        "From placement to sshd answering.",
    );
    WAKE.render(
        out,
        "vessel_wake_seconds",
        "From a wake's placement to sshd answering with the vessel's own host key.",
    );
    HIBERNATIONS.render(
        out,
        "vessel_hibernations_total",
        "Vessels sent to sleep (container stopped and kept, GPUs, cores and memory given back), \
         by reason: owner, admin, idle (the undertaker).",
    );
    WAKES.render(
        out,
        "vessel_wakes_total",
        "Sleepers woken, by where: home (the host their disk was on) or elsewhere (moved).",
    );
    header(
        out,
        "vessel_hibernated_gpu_hours_total",
        "counter",
        "GPU-hours sleepers gave back: for each that woke or was buried, its GPUs times its time asleep.",
    );
    let hours = HIBERNATED_GPU_SECONDS.load(Ordering::Relaxed) as f64 / 3600.0;
    let _ = writeln!(out, "vessel_hibernated_gpu_hours_total {hours}");
    IN_LINE.render(
        out,
        "vessel_line_wait_seconds",
        "Time in line of requests placed from it (its count: placements from the line).",
    );
    BURIALS.render(
        out,
        "vessel_burials_total",
        "Vessels sent to be buried, by reason: owner, admin (killed by them), cancelled \
         (withdrawn while waiting), idle, expired (by the undertaker).",
    );
    header(
        out,
        "vessel_undertaker_idle_gpu_hours_total",
        "counter",
        "GPU-hours of idle work-time held by the vessels the undertaker buried as idle \
         (their GPUs times their idle work-hours).",
    );
    let hours = IDLE_GPU_SECONDS.load(Ordering::Relaxed) as f64 / 3600.0;
    let _ = writeln!(out, "vessel_undertaker_idle_gpu_hours_total {hours}");
    PROBES.render(
        out,
        "vessel_host_probes_total",
        "Host probes over SSH by the survey, by result (ok: an inventory came back).",
    );
    header(
        out,
        "vessel_host_incidents_total",
        "counter",
        "Incidents opened: a probed host stopped answering.",
    );
    let n = INCIDENTS.load(Ordering::Relaxed);
    let _ = writeln!(out, "vessel_host_incidents_total {n}");
    GPU_INCIDENTS.render(
        out,
        "vessel_gpu_incidents_total",
        "GPU metric incidents (a host's DCGM series stale), opened and closed.",
    );
}

/// What the database says now.
async fn render_gauges(
    out: &mut String,
    db: &PgPool,
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    header(
        out,
        "vessel_vessels",
        "gauge",
        "Vessels by queue and state.",
    );
    for v in gauges::vessels(db).await? {
        let (queue, st, n) = (escape(&v.queue), escape(&v.state), v.n);
        let _ = writeln!(
            out,
            "vessel_vessels{{queue=\"{queue}\",state=\"{st}\"}} {n}"
        );
    }
    let gpus = gauges::gpus(db).await?;
    for (name, help, pick) in [
        (
            "vessel_gpus",
            "GPUs per queue, as the last probes found them.",
            (|g: &gauges::QueueGpus| g.total) as fn(&gauges::QueueGpus) -> i64,
        ),
        (
            "vessel_gpus_allocated",
            "GPUs per queue held by a live vessel.",
            |g| g.allocated,
        ),
        (
            "vessel_gpus_free",
            "GPUs per queue a vessel could get now (not held, on an online host that is not draining).",
            |g| g.free,
        ),
    ] {
        header(out, name, "gauge", help);
        for g in &gpus {
            let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", escape(&g.queue), pick(g));
        }
    }
    // Every configured queue, an empty line as 0.
    let lines = gauges::waiting(db).await?;
    header(
        out,
        "vessel_line_waiting",
        "gauge",
        "Requests waiting in line, per queue.",
    );
    let mut longest = String::new();
    for queue in config.queues.keys() {
        let line = lines.iter().find(|l| &l.queue == queue);
        let n = line.map_or(0, |l| l.waiting);
        let secs = line
            .and_then(|l| l.oldest_queued_at)
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        let queue = escape(queue);
        let _ = writeln!(out, "vessel_line_waiting{{queue=\"{queue}\"}} {n}");
        let _ = writeln!(
            longest,
            "vessel_line_longest_wait_seconds{{queue=\"{queue}\"}} {secs}"
        );
    }
    header(
        out,
        "vessel_line_longest_wait_seconds",
        "gauge",
        "How long the request waiting longest in each queue has waited (0: none waiting).",
    );
    out.push_str(&longest);
    Ok(())
}

/// `/metrics` in the Prometheus text format: what this process counted,
/// then what the database says now.
pub async fn text(db: &PgPool, config: &Config) -> Result<String, sqlx::Error> {
    let mut out = String::new();
    render_counted(&mut out);
    // Wall time, not the undertaker's clock: `queued_at` is the database's.
    render_gauges(&mut out, db, config, chrono::Utc::now()).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labelled_counter_exports_every_value_from_the_start() {
        static C: LabelledCounter<2> = LabelledCounter::new("result", ["ok", "failed"]);
        C.inc(1);
        let mut out = String::new();
        C.render(&mut out, "x_total", "Help.");
        assert_eq!(
            out,
            "# HELP x_total Help.\n# TYPE x_total counter\nx_total{result=\"ok\"} 0\nx_total{result=\"failed\"} 1\n"
        );
    }

    #[test]
    fn burial_reasons_line_up_with_their_labels() {
        for (reason, label) in [
            (Burial::Owner, "owner"),
            (Burial::Admin, "admin"),
            (Burial::Cancelled, "cancelled"),
            (Burial::Idle, "idle"),
            (Burial::Expired, "expired"),
            (Burial::Disk, "disk"),
        ] {
            assert_eq!(BURIAL_REASONS[reason as usize], label);
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
