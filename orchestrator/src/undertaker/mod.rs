//! The undertaker: reclaims idle and expired vessels. One PromQL query per
//! sweep gives every GPU's average utilisation; CPU-only vessels are read
//! from the Docker API. Idle time accrues only inside work hours; missing
//! metrics are "unknown", never idle. At `warn_after` idle work-hours the
//! owner is warned (Keep / Kill); `bury_after` more and the vessel is buried.
//!
//! Each vessel is judged by [`decide`], a pure function of its ledger, its
//! use and the time; the sweep around it reads, decides and writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tracing::{info, warn, Instrument};
use uuid::Uuid;
use vessel_api::events::EventKind;

use crate::clock::Clock;
use crate::config::UndertakerConfig;
use crate::disk_watch;
use crate::domain::VesselState;
use crate::error_chain::chain;
use crate::hosts::HostPool;
use crate::prom::{PromError, Prometheus};
use crate::store::idle::{self, AsRead, Counters, CpuReading, RunningVessel};
use crate::store::{self, audit, events, jobs, vessels};
use crate::units::ByteSize;
use crate::work_hours::WorkHours;

pub mod hibernate;
mod sleepers;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Idle,
    Busy,
    Unknown,
}

#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    pub skipped: bool,
    pub vessels: usize,
    pub idle: usize,
    pub unknown: usize,
    pub warned: usize,
    pub buried: usize,
    pub expired: usize,
    /// Stopped for writing more outside their homes than their queue allows.
    pub disk_stopped: usize,
    /// Idle vessels sent to sleep.
    pub hibernated: usize,
    /// Sleepers warned of their burial, and buried (asleep too long, or
    /// over their owner's `max_hibernated`).
    pub sleepers_warned: usize,
    pub sleepers_buried: usize,
}

impl SweepReport {
    fn count(&mut self, usage: Usage, decision: &Decision) {
        match (decision.verdict, usage) {
            (Verdict::Expire, _) => self.expired += 1,
            // Idle but kept: not counted as idle.
            (Verdict::Reset, _) => {}
            (_, Usage::Idle) => self.idle += 1,
            (_, Usage::Unknown) => self.unknown += 1,
            (_, Usage::Busy) => {}
        }
        match decision.verdict {
            Verdict::Warn => self.warned += 1,
            Verdict::Bury => self.buried += 1,
            Verdict::Hibernate => self.hibernated += 1,
            _ => {}
        }
    }
}

/// One vessel's idle bookkeeping, as the last sweep left it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    pub expires_at: DateTime<Utc>,
    /// Idle work-seconds so far.
    pub idle_secs: f64,
    pub last_sweep_at: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
    pub keep_until: Option<DateTime<Utc>>,
    pub expiry_warned_at: Option<DateTime<Utc>>,
}

impl Ledger {
    fn of(v: &RunningVessel) -> Ledger {
        Ledger {
            expires_at: v.expires_at,
            idle_secs: v.idle_secs.unwrap_or(0.0),
            last_sweep_at: v.last_sweep_at,
            warned_at: v.warned_at,
            keep_until: v.keep_until,
            expiry_warned_at: v.expiry_warned_at,
        }
    }

    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// The rules a sweep applies.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    /// Idle work-time before the warning…
    pub warn_after: Duration,
    /// …and after the warning, before burial.
    pub bury_after: Duration,
    /// Warn this long before a vessel's lifetime ends.
    pub expiry_warning: Duration,
    /// Idle time accrues only inside these.
    pub work: &'a WorkHours,
}

impl Policy<'_> {
    fn warn_at(&self) -> f64 {
        self.warn_after.as_secs_f64()
    }

    fn bury_at(&self) -> f64 {
        self.warn_at() + self.bury_after.as_secs_f64()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its lifetime is over: buried whatever its use.
    Expire,
    /// Idle for `bury_after` more since the warning: buried.
    Bury,
    /// Idle for `warn_after` (or, hibernating, `hibernate_after` less
    /// `warn_before`) and not warned yet: the owner is warned.
    Warn,
    /// Idle for `hibernate_after`, warned `warn_before` ago: hibernated.
    Hibernate,
    /// Used, or kept: the counter is back at zero, a warning withdrawn.
    Reset,
    /// Below the marks, or its use unknown: the counter grows or holds.
    Nothing,
}

/// Why a vessel is buried, each with its one spelling in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaim {
    /// Its lifetime ended.
    Expired,
    /// Idle past the warning.
    Idle,
    /// Over its queue's `disk` limit after a warning.
    Disk,
}

impl Reclaim {
    /// The audit log's action.
    pub fn audit_action(self) -> audit::Action {
        match self {
            Reclaim::Expired => audit::Action::VesselExpire,
            Reclaim::Idle => audit::Action::VesselBury,
            Reclaim::Disk => audit::Action::VesselDiskStop,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The idle work-seconds to record.
    pub idle_secs: f64,
    /// The lifetime ends within `expiry_warning` and the owner was not told.
    pub warn_expiry: bool,
}

/// What to do with one running vessel, from what the last sweep recorded
/// and its use since.
pub fn decide(ledger: &Ledger, usage: Usage, now: DateTime<Utc>, policy: &Policy) -> Decision {
    if ledger.expired(now) {
        return Decision {
            verdict: Verdict::Expire,
            idle_secs: ledger.idle_secs,
            warn_expiry: false,
        };
    }
    let warn_expiry = expiry_due(ledger, now, policy.expiry_warning);
    let kept = ledger.keep_until.is_some_and(|k| k > now);
    let idle = match (usage, kept) {
        (Usage::Busy, _) | (Usage::Idle, true) => {
            return Decision {
                verdict: Verdict::Reset,
                idle_secs: 0.0,
                warn_expiry,
            }
        }
        (Usage::Unknown, _) => ledger.idle_secs,
        (Usage::Idle, false) => {
            let worked = ledger.last_sweep_at.map_or(0, |last| {
                policy.work.between(last, now).num_seconds().max(0)
            });
            ledger.idle_secs + worked as f64
        }
    };
    // Nobody is buried unwarned: a vessel that crossed both marks at once
    // (the orchestrator was down, say) is warned now and gets the whole
    // `bury_after` from here.
    if idle >= policy.warn_at() && ledger.warned_at.is_none() {
        return Decision {
            verdict: Verdict::Warn,
            idle_secs: idle.min(policy.warn_at()),
            warn_expiry,
        };
    }
    let verdict = if idle >= policy.bury_at() {
        Verdict::Bury
    } else {
        Verdict::Nothing
    };
    Decision {
        verdict,
        idle_secs: idle,
        warn_expiry,
    }
}

/// The lifetime ends within `warning` and the owner was not told yet.
fn expiry_due(ledger: &Ledger, now: DateTime<Utc>, warning: Duration) -> bool {
    let due = ledger.expires_at - chrono::Duration::from_std(warning).unwrap_or_default();
    now >= due && ledger.expiry_warned_at.is_none()
}

/// A GPU vessel is idle when every one of its GPUs is; a GPU without a
/// metric makes it unknown.
pub fn gpu_usage(uuids: &[String], metrics: &HashMap<String, f64>, idle_below: f64) -> Usage {
    let values: Option<Vec<f64>> = uuids.iter().map(|u| metrics.get(u).copied()).collect();
    match values {
        None => Usage::Unknown,
        Some(v) if v.iter().all(|u| *u <= idle_below) => Usage::Idle,
        Some(_) => Usage::Busy,
    }
}

/// A CPU-only vessel's use between two readings of its cgroup's cumulative
/// CPU time, as a share of its cores. Without an earlier reading, or when
/// the counter went backwards (a restarted container), it is unknown.
pub fn cpu_usage(before: Option<CpuReading>, now_ns: i64, cores: usize, idle_below: f64) -> Usage {
    let Some(before) = before else {
        return Usage::Unknown;
    };
    let elapsed_ns = before.elapsed_secs * 1e9;
    if elapsed_ns <= 0.0 || now_ns < before.before_ns {
        return Usage::Unknown;
    }
    let percent = (now_ns - before.before_ns) as f64 / (elapsed_ns * cores.max(1) as f64) * 100.0;
    if percent <= idle_below {
        Usage::Idle
    } else {
        Usage::Busy
    }
}

pub struct Undertaker {
    db: PgPool,
    config: UndertakerConfig,
    /// Each queue's `disk` limit in bytes, for the queues that have one.
    disk_limits: HashMap<String, u64>,
    /// Each queue's hibernation rules.
    queue_rules: HashMap<String, hibernate::QueueRules>,
    work: WorkHours,
    clock: Arc<dyn Clock>,
    hosts: Arc<HostPool>,
    /// Where GPU use is read; None when no Prometheus is configured (GPU
    /// vessels are then never idle: unknown is not idle).
    prometheus: Option<Prometheus>,
}

impl Undertaker {
    pub fn new(
        db: PgPool,
        config: UndertakerConfig,
        work: WorkHours,
        clock: Arc<dyn Clock>,
        hosts: Arc<HostPool>,
    ) -> Self {
        // The URL was checked with the config; a client that cannot be
        // made leaves GPU use unknown, as no Prometheus would.
        let prometheus = config.prometheus_url.as_deref().and_then(|url| {
            Prometheus::new(url)
                .map(|p| p.with_clock(clock.clone()))
                .map_err(|e| warn!(error = %chain(&e), "no Prometheus client"))
                .ok()
        });
        Undertaker {
            db,
            config,
            disk_limits: HashMap::new(),
            queue_rules: HashMap::new(),
            work,
            clock,
            hosts,
            prometheus,
        }
    }

    /// The queues' rules: `disk` limits, which the sweep holds vessels to
    /// where their host's engine cannot, and hibernation (`idle_action`,
    /// `hibernate_after` …).
    pub fn with_queues(mut self, config: &crate::config::Config) -> Self {
        self.disk_limits = config.disk_limits();
        self.queue_rules = hibernate::rules_of(config);
        self
    }

    fn on_tailnet(&self, v: &RunningVessel) -> bool {
        v.host
            .as_deref()
            .and_then(|h| self.hosts.spec(h))
            .is_some_and(|s| matches!(s.network, crate::config::NetworkSpec::Tailscale { .. }))
    }

    fn policy(&self) -> Policy<'_> {
        Policy {
            warn_after: self.config.warn_after.duration(),
            bury_after: self.config.bury_after.duration(),
            expiry_warning: self.config.expiry_warning.duration(),
            work: &self.work,
        }
    }

    /// `avg_over_time(DCGM_FI_DEV_GPU_UTIL[window])` by GPU UUID.
    pub async fn gpu_utilisation(&self) -> Result<HashMap<String, f64>, PromError> {
        match &self.prometheus {
            Some(p) => p.utilisation(self.config.window.duration()).await,
            None => Ok(HashMap::new()),
        }
    }

    /// How the vessel was used since the last sweep.
    async fn usage(&self, v: &RunningVessel, gpu: &HashMap<String, f64>) -> Usage {
        if !v.gpu_uuids.is_empty() {
            return gpu_usage(&v.gpu_uuids, gpu, self.config.gpu_idle_below);
        }
        match &v.host {
            Some(h) => self.cpu_usage(h, v.id, v.cores.len()).await,
            None => Usage::Unknown,
        }
    }

    /// A CPU-only vessel's use since the last sweep, from its cgroup's
    /// cumulative CPU time (read with an exec over the Docker API, since
    /// some engines report no CPU in their stats). The first reading is a
    /// baseline: unknown, not idle.
    async fn cpu_usage(&self, host: &str, id: Uuid, cores: usize) -> Usage {
        let Some(now_ns) = self.read_cpu_ns(host, id).await else {
            return Usage::Unknown;
        };
        match idle::swap_cpu_reading(&self.db, id, now_ns).await {
            Ok(before) => cpu_usage(before, now_ns, cores, self.config.cpu_idle_below),
            Err(e) => {
                warn!(error = %e, "cannot record the CPU reading");
                Usage::Unknown
            }
        }
    }

    /// The container's cumulative CPU time: from the engine's stats, which
    /// cost the vessel nothing, else from an exec that reads its cgroup
    /// (engines whose stats carry no CPU). An exec runs inside the vessel's
    /// cgroup and is counted as its use (some 25 ms of CPU a reading).
    async fn read_cpu_ns(&self, host: &str, id: Uuid) -> Option<i64> {
        let link = self.hosts.link(host).await.ok()?;
        let name = crate::conductor::spec::container_name(&id.to_string());
        match stats_cpu_ns(&link.docker, &name).await {
            Some(ns) => Some(ns),
            None => {
                tracing::debug!("the engine's stats carry no CPU: reading the cgroup");
                exec_cpu_ns(&link.docker, &name).await
            }
        }
    }

    pub async fn sweep(&self) -> Result<SweepReport, sqlx::Error> {
        // The lock lives on one connection for the whole sweep.
        let mut lock = self.db.acquire().await?;
        if !idle::try_lock_sweep(&mut lock).await? {
            return Ok(SweepReport {
                skipped: true,
                ..SweepReport::default()
            });
        }
        let result = self.sweep_locked().await;
        idle::unlock_sweep(&mut lock).await?;
        result
    }

    async fn sweep_locked(&self) -> Result<SweepReport, sqlx::Error> {
        let running = self.running().await?;
        self.sweep_from(&running).await
    }

    /// Every running vessel and its ledger: what a sweep decides from.
    pub async fn running(&self) -> Result<Vec<RunningVessel>, sqlx::Error> {
        idle::running(&self.db).await
    }

    /// A sweep over rows read earlier (by [`Undertaker::running`]). A sweep
    /// is slow (metrics, one exec per CPU vessel): a Keep, an Extend or use
    /// may land between the read and the act, so every write re-checks in
    /// its own statement that the row is still as read, and the change that
    /// landed wins. The sweep holds the lock around both; tests call the
    /// two halves apart to put a Keep in between.
    pub async fn sweep_from(&self, running: &[RunningVessel]) -> Result<SweepReport, sqlx::Error> {
        let now = self.clock.now();
        let gpu = self.gpu_utilisation().await.unwrap_or_else(|e| {
            warn!(
                error = %chain(&e),
                "no GPU metrics this sweep: GPU vessels count as unknown"
            );
            HashMap::new()
        });
        let mut report = SweepReport {
            vessels: running.len(),
            ..SweepReport::default()
        };
        let mut counters = Counters::default();
        for v in running {
            let span = tracing::info_span!("idle", vessel = %v.id);
            self.judge(v, &gpu, now, &mut report, &mut counters)
                .instrument(span)
                .await?;
        }
        idle::record_counters(&self.db, &counters, now).await?;
        self.judge_sleepers(now, &mut report).await?;
        info!(?report, "undertaker sweep");
        Ok(report)
    }

    /// Measures, decides and acts on one vessel.
    async fn judge(
        &self,
        v: &RunningVessel,
        gpu: &HashMap<String, f64>,
        now: DateTime<Utc>,
        report: &mut SweepReport,
        counters: &mut Counters,
    ) -> Result<(), sqlx::Error> {
        let ledger = Ledger::of(v);
        // Tailnet hosts cannot wake a sleeper yet: their vessels are buried.
        let sleeps = self
            .queue_rules
            .get(&v.queue)
            .filter(|r| r.hibernates && !self.on_tailnet(v));
        // An expired vessel goes whatever its use: no need to measure it.
        let usage = match (ledger.expired(now), sleeps) {
            (true, _) => Usage::Unknown,
            (false, Some(_)) => self.usage_for_sleep(v, gpu).await,
            (false, None) => self.usage(v, gpu).await,
        };
        let decision = match sleeps {
            Some(r) => hibernate::decide(&ledger, usage, now, &r.policy),
            None => decide(&ledger, usage, now, &self.policy()),
        };
        report.count(usage, &decision);
        if decision.verdict == Verdict::Expire {
            let reason = format!(
                "its lifetime ended at {}",
                v.expires_at.format("%Y-%m-%d %H:%M UTC")
            );
            if self.bury(v, Reclaim::Expired, &reason, now).await? {
                crate::metrics::buried(crate::metrics::Burial::Expired);
            }
            return Ok(());
        }
        if self.watch_disk(v, now).await? {
            report.disk_stopped += 1;
            return Ok(());
        }
        // Counters for every vessel go in one statement after the sweep;
        // what announces something gets a transaction of its own with its
        // event.
        counters.push(
            v.id,
            decision.idle_secs,
            decision.verdict == Verdict::Reset,
            v.keep_until,
        );
        let note = match sleeps {
            Some(r) => self.hibernation_note(v, &decision, &r.policy, now),
            None => self.burial_note(v, &decision),
        };
        self.warn(v, &decision, now, note).await?;
        match decision.verdict {
            Verdict::Bury => {
                let reason = format!("idle for {:.0} work-hours", decision.idle_secs / 3600.0);
                if self.bury(v, Reclaim::Idle, &reason, now).await? {
                    crate::metrics::buried(crate::metrics::Burial::Idle);
                    crate::metrics::reclaimed_idle(v.gpu_uuids.len(), decision.idle_secs);
                }
            }
            Verdict::Hibernate => {
                self.hibernate(v, decision.idle_secs, now).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The idle warning of a burying queue, in words.
    fn burial_note(&self, v: &RunningVessel, decision: &Decision) -> (EventKind, String) {
        let idle = decision.idle_secs;
        let left = self.policy().bury_at() - idle;
        let message = format!(
            "*{}* has been idle for {:.0} work-hours and will be reclaimed after {:.0} more unless you keep it.",
            v.name,
            idle / 3600.0,
            left / 3600.0
        );
        (EventKind::IdleWarning, message)
    }

    /// Holds a vessel to its queue's `disk` limit where its host's engine
    /// cannot: measures its writable layer, then warns, stops, or withdraws
    /// a warning. True when it was sent to be buried by this call.
    async fn watch_disk(&self, v: &RunningVessel, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let (Some(limit), Some(host), false) =
            (self.disk_limits.get(&v.queue), &v.host, v.disk_quota)
        else {
            return Ok(false);
        };
        let Ok(link) = self.hosts.link(host).await else {
            return Ok(false);
        };
        let name = crate::conductor::spec::container_name(&v.id.to_string());
        let Some(used) = disk_watch::layer_size(&link.docker, &name).await else {
            return Ok(false);
        };
        store::disk::record(&self.db, v.id, used as i64, now).await?;
        let (used_h, limit_h) = (ByteSize(used), ByteSize(*limit));
        match disk_watch::decide(used, *limit, v.disk_warned_at.is_some()) {
            disk_watch::Verdict::Within => Ok(false),
            disk_watch::Verdict::Withdraw => {
                store::disk::withdraw_warning(&self.db, v.id).await?;
                Ok(false)
            }
            disk_watch::Verdict::Warn => {
                let mut tx = self.db.begin().await?;
                if store::disk::mark_warned(&mut tx, v.id, now).await? {
                    let message = format!(
                        "*{}* has written {used_h} outside your home directory (packages, /tmp, /opt), over this queue's limit of {limit_h}. Free some of it (your home does not count): if it is still over at the next check{}, the vessel is stopped. Your home directory is kept.",
                        v.name,
                        self.next_sweep(now)
                            .map(|t| t.format(" (%a %d %b %H:%M UTC)").to_string())
                            .unwrap_or_default()
                    );
                    self.notify(&mut tx, v.id, EventKind::DiskWarning, &message)
                        .await?;
                    info!(used, limit, "over its disk limit: warned");
                }
                tx.commit().await?;
                Ok(false)
            }
            disk_watch::Verdict::Stop => {
                let reason = format!(
                    "it wrote {used_h} outside its home, over its queue's limit of {limit_h}"
                );
                let stopped = self.bury(v, Reclaim::Disk, &reason, now).await?;
                if stopped {
                    crate::metrics::buried(crate::metrics::Burial::Disk);
                }
                Ok(stopped)
            }
        }
    }

    /// When the next sweep is due, as the warning says it.
    fn next_sweep(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let schedule = self.config.schedule().ok()?;
        crate::cron::Cron::parse(&schedule.cron)
            .ok()?
            .next_after(now)
    }

    /// The idle and end-of-lifetime warnings the decision calls for, each
    /// recorded with its event in one transaction.
    async fn warn(
        &self,
        v: &RunningVessel,
        decision: &Decision,
        now: DateTime<Utc>,
        (kind, message): (EventKind, String),
    ) -> Result<(), sqlx::Error> {
        let warn_idle = decision.verdict == Verdict::Warn;
        if !warn_idle && !decision.warn_expiry {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        // Each warning only if its mark is written: a Keep or an Extend that
        // landed since the read makes it moot.
        if warn_idle && idle::mark_warned(&mut tx, v.id, now, v.keep_until).await? {
            self.notify(&mut tx, v.id, kind, &message).await?;
        }
        if decision.warn_expiry
            && idle::mark_expiry_warned(&mut tx, v.id, now, v.expires_at).await?
        {
            let message = format!(
                "*{}* reaches the end of its lifetime at {}; extend it to keep it.",
                v.name,
                v.expires_at.format("%a %d %b %H:%M UTC")
            );
            self.notify(&mut tx, v.id, EventKind::ExpiryWarning, &message)
                .await?;
        }
        tx.commit().await
    }

    async fn notify(
        &self,
        tx: &mut sqlx::PgConnection,
        id: Uuid,
        kind: EventKind,
        message: &str,
    ) -> Result<(), sqlx::Error> {
        if let Some(v) = vessels::get(&mut *tx, id).await? {
            events::emit(
                &mut *tx,
                Some(id),
                &kind,
                &v.event(Some(message.to_string())),
            )
            .await?;
        }
        Ok(())
    }

    /// Stops a vessel: the conductor removes it and frees its resources; the
    /// owner's DM says why and how to start again. Only if the rows still
    /// call for it: the vessel is locked while its lifetime (for an expiry)
    /// or its ledger (for an idle burial) is checked against what the sweep
    /// read, so a Keep or an Extend pressed since wins. True when it was
    /// sent to be buried by this call.
    async fn bury(
        &self,
        v: &RunningVessel,
        why: Reclaim,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let id = v.id;
        let expire = why == Reclaim::Expired;
        let action = why.audit_action();
        let mut tx = self.db.begin().await?;
        let still = if expire {
            idle::lock_for_expiry(&mut tx, id, now).await?
        } else {
            let read = AsRead {
                expires_at: v.expires_at,
                warned_at: v.warned_at,
                keep_until: v.keep_until,
            };
            idle::lock_for_idle_burial(&mut tx, id, &read).await?
        };
        if !still {
            info!("not buried: kept, extended or changed since the sweep read it");
            tx.commit().await?;
            return Ok(false);
        }
        let moved = vessels::transition(
            &mut tx,
            id,
            &[VesselState::Running],
            VesselState::Stopping,
            Some(&format!("buried by the undertaker: {reason}")),
        )
        .await?;
        if moved.is_some() {
            jobs::enqueue(&mut tx, id).await?;
            audit::record(
                &mut tx,
                "undertaker",
                action,
                Some(&id.to_string()),
                "ok",
                serde_json::json!({ "reason": reason }),
            )
            .await?;
            info!(%reason, "burying");
        }
        tx.commit().await?;
        Ok(moved.is_some())
    }

    /// Keep: no idle accrual until `until`, the counter back at zero.
    pub async fn keep(db: &PgPool, id: Uuid, until: DateTime<Utc>) -> Result<(), sqlx::Error> {
        idle::keep(db, id, until).await
    }
}

async fn stats_cpu_ns(docker: &bollard::Docker, container: &str) -> Option<i64> {
    use bollard::query_parameters::StatsOptions;
    use futures::StreamExt;
    let options = StatsOptions {
        stream: false,
        one_shot: true,
    };
    let stats = docker.stats(container, Some(options)).next().await?.ok()?;
    let total = stats.cpu_stats?.cpu_usage?.total_usage?;
    // Zero: an engine that does not account CPU, not a vessel that never ran.
    i64::try_from(total).ok().filter(|ns| *ns > 0)
}

async fn exec_cpu_ns(docker: &bollard::Docker, container: &str) -> Option<i64> {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    use futures::StreamExt;
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec![
                    "sh",
                    "-c",
                    "cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null \
                     || awk '/^usage_usec/ {printf \"%d\\n\", $2 * 1000}' /sys/fs/cgroup/cpu.stat",
                ]),
                attach_stdout: Some(true),
                ..Default::default()
            },
        )
        .await
        .ok()?;
    let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.ok()?
    else {
        return None;
    };
    let mut text = String::new();
    while let Some(Ok(chunk)) = output.next().await {
        text.push_str(&chunk.to_string());
    }
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work_hours::WorkHoursConfig;

    const H: f64 = 3600.0;

    /// 2026-11-30 is a Monday; work hours are 9–18 UTC, Monday to Friday.
    fn t(hhmm: &str) -> DateTime<Utc> {
        format!("2026-11-30T{hhmm}:00Z").parse().unwrap()
    }

    fn ledger() -> Ledger {
        Ledger {
            expires_at: "2026-12-31T00:00:00Z".parse().unwrap(),
            idle_secs: 0.0,
            last_sweep_at: None,
            warned_at: None,
            keep_until: None,
            expiry_warned_at: None,
        }
    }

    fn policy(work: &WorkHours) -> Policy<'_> {
        Policy {
            warn_after: Duration::from_secs(6 * 3600),
            bury_after: Duration::from_secs(6 * 3600),
            expiry_warning: Duration::from_secs(24 * 3600),
            work,
        }
    }

    #[test]
    fn the_undertaker_decides_from_the_ledger_the_use_and_the_time() {
        let work = WorkHours::parse(&WorkHoursConfig::default()).unwrap();
        let policy = policy(&work);
        let swept = |at: &str, idle: f64| Ledger {
            last_sweep_at: Some(t(at)),
            idle_secs: idle,
            ..ledger()
        };
        let warned = |l: Ledger| Ledger {
            warned_at: Some(t("08:00")),
            ..l
        };
        use Usage::*;
        use Verdict::*;
        #[rustfmt::skip]
        let cases: Vec<(&str, Ledger, Usage, &str, Verdict, f64, bool)> = vec![
            ("first sweep: a baseline, nothing accrues",
             ledger(), Idle, "10:00", Nothing, 0.0, false),
            ("idle for an hour of work time",
             swept("10:00", 0.0), Idle, "11:00", Nothing, H, false),
            ("idle outside work hours accrues nothing",
             swept("19:00", H), Idle, "23:00", Nothing, H, false),
            ("idle across the start of the day counts from 9:00",
             swept("07:00", 0.0), Idle, "10:00", Nothing, H, false),
            ("unknown use holds the counter",
             swept("10:00", 2.0 * H), Unknown, "11:00", Nothing, 2.0 * H, false),
            ("busy resets the counter",
             swept("10:00", 5.0 * H), Busy, "11:00", Reset, 0.0, false),
            ("busy withdraws a warning",
             warned(swept("10:00", 8.0 * H)), Busy, "11:00", Reset, 0.0, false),
            ("kept and idle resets too",
             Ledger { keep_until: Some(t("12:00")), ..swept("10:00", 5.0 * H) },
             Idle, "11:00", Reset, 0.0, false),
            ("a Keep that ran out no longer protects",
             Ledger { keep_until: Some(t("10:30")), ..swept("10:00", 0.0) },
             Idle, "11:00", Nothing, H, false),
            ("reaching warn_after warns",
             swept("14:00", 5.0 * H), Idle, "15:00", Warn, 6.0 * H, false),
            ("warned once, not twice",
             warned(swept("14:00", 6.0 * H)), Idle, "15:00", Nothing, 7.0 * H, false),
            ("both marks at once: warned, not buried, the counter at warn_after",
             swept("09:00", 11.0 * H), Idle, "18:00", Warn, 6.0 * H, false),
            ("bury_after more after the warning buries",
             warned(swept("12:00", 11.0 * H)), Idle, "13:00", Bury, 12.0 * H, false),
            ("unknown use never buries a warned vessel below the mark",
             warned(swept("12:00", 11.0 * H)), Unknown, "13:00", Nothing, 11.0 * H, false),
            ("the last day of its lifetime: warned once",
             Ledger { expires_at: t("23:00"), ..swept("10:00", 0.0) },
             Busy, "11:00", Reset, 0.0, true),
            ("the expiry warning is not repeated",
             Ledger { expires_at: t("23:00"), expiry_warned_at: Some(t("10:00")), ..swept("10:00", 0.0) },
             Idle, "11:00", Nothing, H, false),
            ("an idle warning and an expiry warning together",
             Ledger { expires_at: t("23:00"), ..swept("14:00", 5.0 * H) },
             Idle, "15:00", Warn, 6.0 * H, true),
            ("the end of its lifetime buries it, whatever its use",
             Ledger { expires_at: t("11:00"), ..swept("10:00", 0.0) },
             Busy, "11:00", Expire, 0.0, false),
            ("an expired vessel that was kept goes too",
             Ledger { expires_at: t("11:00"), keep_until: Some(t("20:00")), ..swept("10:00", 0.0) },
             Unknown, "12:00", Expire, 0.0, false),
        ];
        for (story, ledger, usage, now, verdict, idle_secs, warn_expiry) in cases {
            let decision = decide(&ledger, usage, t(now), &policy);
            assert_eq!(
                decision,
                Decision {
                    verdict,
                    idle_secs,
                    warn_expiry
                },
                "{story}"
            );
        }
    }

    #[test]
    fn a_gpu_vessel_is_idle_only_when_every_gpu_is() {
        let metrics: HashMap<String, f64> =
            [("a".into(), 0.0), ("b".into(), 0.0), ("c".into(), 40.0)].into();
        let uuids = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (uuids(&["a"]), Usage::Idle),
            (uuids(&["a", "b"]), Usage::Idle),
            (uuids(&["a", "c"]), Usage::Busy),
            (uuids(&["a", "missing"]), Usage::Unknown),
        ];
        for (gpus, expected) in cases {
            assert_eq!(gpu_usage(&gpus, &metrics, 0.0), expected, "{gpus:?}");
        }
    }

    #[test]
    fn a_cpu_vessel_is_measured_between_two_readings() {
        let reading = |before_ns, elapsed_secs| {
            Some(CpuReading {
                before_ns,
                elapsed_secs,
            })
        };
        let second = 1_000_000_000;
        let cases = [
            ("no earlier reading", None, 5 * second, 1, Usage::Unknown),
            (
                "a counter that went back",
                reading(9 * second, 10.0),
                second,
                1,
                Usage::Unknown,
            ),
            ("no time passed", reading(0, 0.0), second, 1, Usage::Unknown),
            (
                "0.5% of one core",
                reading(0, 10.0),
                second / 20,
                1,
                Usage::Idle,
            ),
            (
                "50% of one core",
                reading(0, 10.0),
                5 * second,
                1,
                Usage::Busy,
            ),
            (
                "1% of four cores",
                reading(0, 10.0),
                4 * second / 10,
                4,
                Usage::Idle,
            ),
        ];
        for (story, before, now_ns, cores, expected) in cases {
            assert_eq!(cpu_usage(before, now_ns, cores, 1.0), expected, "{story}");
        }
    }
}
