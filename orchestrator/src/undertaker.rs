//! The undertaker: reclaims idle and expired vessels. One PromQL query per
//! sweep gives every GPU's average utilisation; CPU-only vessels are read
//! from the Docker API. Idle time accrues only inside work hours; missing
//! metrics are "unknown", never idle. At `warn_after` idle work-hours the
//! owner is warned (Keep / Kill); `bury_after` more and the vessel is buried.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tracing::{info, warn};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::UndertakerConfig;
use crate::domain::VesselState;
use crate::hosts::HostPool;
use crate::store::{audit, events, jobs, vessels};
use crate::work_hours::WorkHours;

/// One replica sweeps at a time: the lock every sweep takes.
const SWEEP_LOCK: i64 = 0x7665_7373_656c; // "vessel"

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
}

/// The counters of one sweep, written together.
#[derive(Default)]
struct Batch {
    ids: Vec<Uuid>,
    idle: Vec<f64>,
    /// The warning is withdrawn (the vessel was used or kept).
    reset: Vec<bool>,
}

pub struct Undertaker {
    db: PgPool,
    config: UndertakerConfig,
    work: WorkHours,
    clock: Arc<dyn Clock>,
    hosts: Arc<HostPool>,
    http: reqwest::Client,
}

impl Undertaker {
    pub fn new(
        db: PgPool,
        config: UndertakerConfig,
        work: WorkHours,
        clock: Arc<dyn Clock>,
        hosts: Arc<HostPool>,
    ) -> Self {
        Undertaker {
            db,
            config,
            work,
            clock,
            hosts,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .expect("http client"),
        }
    }

    /// `avg_over_time(DCGM_FI_DEV_GPU_UTIL[window])` by GPU UUID.
    pub async fn gpu_utilisation(&self) -> Result<HashMap<String, f64>, String> {
        let Some(url) = &self.config.prometheus_url else {
            return Ok(HashMap::new());
        };
        let query = format!(
            "avg_over_time(DCGM_FI_DEV_GPU_UTIL[{}s])",
            self.config.window.duration().as_secs().max(1)
        );
        let body: serde_json::Value = self
            .http
            .get(format!("{}/api/v1/query", url.trim_end_matches('/')))
            .query(&[("query", query.as_str())])
            .send()
            .await
            .map_err(|e| format!("prometheus: {e}"))?
            .json()
            .await
            .map_err(|e| format!("prometheus: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("prometheus: {}", body["error"]));
        }
        Ok(body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let uuid = s["metric"]["UUID"].as_str()?.to_string();
                let value = s["value"][1].as_str()?.parse::<f64>().ok()?;
                Some((uuid, value))
            })
            .collect())
    }

    /// A CPU-only vessel's use since the last sweep, from its cgroup's
    /// cumulative CPU time (read with an exec over the Docker API, since
    /// some engines report no CPU in their stats). The first reading is a
    /// baseline: unknown, not idle.
    async fn cpu_usage(&self, host: &str, id: Uuid, cores: usize) -> Usage {
        let Some(now_ns) = self.read_cpu_ns(host, id).await else {
            return Usage::Unknown;
        };
        let read_at = Utc::now();
        let previous = sqlx::query!(
            "SELECT cpu_ns, cpu_read_at FROM vessel_idle WHERE vessel_id = $1",
            id
        )
        .fetch_optional(&self.db)
        .await
        .ok()
        .flatten();
        let _ = sqlx::query!(
            "INSERT INTO vessel_idle (vessel_id, cpu_ns, cpu_read_at) VALUES ($1, $2, $3)
             ON CONFLICT (vessel_id) DO UPDATE SET cpu_ns = $2, cpu_read_at = $3",
            id,
            now_ns,
            read_at
        )
        .execute(&self.db)
        .await;
        let Some((before_ns, before_at)) = previous.and_then(|p| Some((p.cpu_ns?, p.cpu_read_at?)))
        else {
            return Usage::Unknown;
        };
        let elapsed_ns = (read_at - before_at).num_nanoseconds().unwrap_or(0) as f64;
        if elapsed_ns <= 0.0 || now_ns < before_ns {
            return Usage::Unknown;
        }
        let percent = (now_ns - before_ns) as f64 / (elapsed_ns * cores.max(1) as f64) * 100.0;
        if percent <= self.config.cpu_idle_below {
            Usage::Idle
        } else {
            Usage::Busy
        }
    }

    async fn read_cpu_ns(&self, host: &str, id: Uuid) -> Option<i64> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        use futures::StreamExt;
        let link = self.hosts.link(host).await.ok()?;
        let name = crate::conductor::spec::container_name(&id.to_string());
        let exec = link
            .docker
            .create_exec(
                &name,
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
            link.docker.start_exec(&exec.id, None).await.ok()?
        else {
            return None;
        };
        let mut text = String::new();
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&chunk.to_string());
        }
        text.trim().parse().ok()
    }

    pub async fn sweep(&self) -> Result<SweepReport, sqlx::Error> {
        // The lock lives on one connection for the whole sweep.
        let mut lock = self.db.acquire().await?;
        let got: bool =
            sqlx::query_scalar!("SELECT pg_try_advisory_lock($1) AS \"got!\"", SWEEP_LOCK)
                .fetch_one(&mut *lock)
                .await?;
        if !got {
            return Ok(SweepReport {
                skipped: true,
                ..SweepReport::default()
            });
        }
        let result = self.sweep_locked().await;
        sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)
            .fetch_one(&mut *lock)
            .await?;
        result
    }

    async fn sweep_locked(&self) -> Result<SweepReport, sqlx::Error> {
        let now = self.clock.now();
        let gpu = match self.gpu_utilisation().await {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "no GPU metrics this sweep: GPU vessels count as unknown");
                HashMap::new()
            }
        };
        let rows = sqlx::query!(
            r#"SELECT v.id, v.name, v.gpu_uuids, v.cores, v.expires_at, h.name AS "host?",
                      i.idle_secs AS "idle_secs?", i.last_sweep_at, i.warned_at,
                      i.keep_until, i.expiry_warned_at
               FROM vessels v
               LEFT JOIN hosts h ON h.id = v.host_id
               LEFT JOIN vessel_idle i ON i.vessel_id = v.id
               WHERE v.state = 'running'"#
        )
        .fetch_all(&self.db)
        .await?;
        let mut report = SweepReport {
            vessels: rows.len(),
            ..SweepReport::default()
        };
        let mut batch = Batch::default();
        let warn_at = self.config.warn_after.duration().as_secs_f64();
        let bury_at = warn_at + self.config.bury_after.duration().as_secs_f64();
        for r in rows {
            if r.expires_at <= now {
                self.bury(
                    r.id,
                    &format!(
                        "its lifetime ended at {}",
                        r.expires_at.format("%Y-%m-%d %H:%M UTC")
                    ),
                    "vessel.expire",
                )
                .await?;
                report.expired += 1;
                continue;
            }
            let expiry_due = r.expires_at
                - chrono::Duration::from_std(self.config.expiry_warning.duration())
                    .unwrap_or_default();
            let warn_expiry = now >= expiry_due && r.expiry_warned_at.is_none();

            let usage = if r.gpu_uuids.is_empty() {
                match &r.host {
                    Some(h) => self.cpu_usage(h, r.id, r.cores.len()).await,
                    None => Usage::Unknown,
                }
            } else {
                let values: Option<Vec<f64>> =
                    r.gpu_uuids.iter().map(|u| gpu.get(u).copied()).collect();
                match values {
                    None => Usage::Unknown,
                    Some(v) if v.iter().all(|u| *u <= self.config.gpu_idle_below) => Usage::Idle,
                    Some(_) => Usage::Busy,
                }
            };
            let kept = r.keep_until.is_some_and(|k| k > now);
            let mut idle = r.idle_secs.unwrap_or(0.0);
            let mut warned_at = r.warned_at;
            let mut withdrawn = false;
            match (usage, kept) {
                (Usage::Idle, false) => {
                    if let Some(last) = r.last_sweep_at {
                        idle += self.work.between(last, now).num_seconds().max(0) as f64;
                    }
                    report.idle += 1;
                }
                (Usage::Busy, _) | (Usage::Idle, true) => {
                    idle = 0.0;
                    warned_at = None;
                    withdrawn = true;
                }
                (Usage::Unknown, _) => report.unknown += 1,
            }
            // Nobody is buried unwarned: a vessel that crossed both marks
            // at once (the orchestrator was down, say) is warned now and
            // gets the whole `bury_after` from here.
            let warn_now = idle >= warn_at && warned_at.is_none();
            if warn_now {
                idle = idle.min(warn_at);
            }
            // Counters for every vessel go in one statement below; what
            // announces something (a warning) gets a transaction of its own
            // with its event.
            batch.ids.push(r.id);
            batch.idle.push(idle);
            batch.reset.push(withdrawn);
            if warn_now || warn_expiry {
                let mut tx = self.db.begin().await?;
                if warn_now {
                    sqlx::query!(
                        "INSERT INTO vessel_idle (vessel_id, warned_at) VALUES ($1, $2)
                         ON CONFLICT (vessel_id) DO UPDATE SET warned_at = $2",
                        r.id,
                        now
                    )
                    .execute(&mut *tx)
                    .await?;
                    self.notify(&mut tx, r.id, "vessel.idle_warning", &format!(
                        "*{}* has been idle for {:.0} work-hours and will be reclaimed after {:.0} more unless you keep it.",
                        r.name, idle / 3600.0, (bury_at - idle) / 3600.0
                    ))
                    .await?;
                    report.warned += 1;
                }
                if warn_expiry {
                    sqlx::query!(
                        "INSERT INTO vessel_idle (vessel_id, expiry_warned_at) VALUES ($1, $2)
                         ON CONFLICT (vessel_id) DO UPDATE SET expiry_warned_at = $2",
                        r.id,
                        now
                    )
                    .execute(&mut *tx)
                    .await?;
                    self.notify(
                        &mut tx,
                        r.id,
                        "vessel.expiry_warning",
                        &format!(
                            "*{}* reaches the end of its lifetime at {}; extend it to keep it.",
                            r.name,
                            r.expires_at.format("%a %d %b %H:%M UTC")
                        ),
                    )
                    .await?;
                }
                tx.commit().await?;
            }
            if idle >= bury_at {
                self.bury(
                    r.id,
                    &format!("idle for {:.0} work-hours", idle / 3600.0),
                    "vessel.bury",
                )
                .await?;
                report.buried += 1;
            }
        }
        // One statement for all counters: 10,000 vessels must not mean
        // 10,000 round trips.
        sqlx::query!(
            "INSERT INTO vessel_idle (vessel_id, idle_secs, last_sweep_at)
             SELECT id, idle, $3 FROM unnest($1::uuid[], $2::float8[]) AS t(id, idle)
             ON CONFLICT (vessel_id) DO UPDATE SET idle_secs = excluded.idle_secs,
               last_sweep_at = excluded.last_sweep_at",
            &batch.ids,
            &batch.idle,
            now
        )
        .execute(&self.db)
        .await?;
        let withdrawn: Vec<Uuid> = batch
            .ids
            .iter()
            .zip(&batch.reset)
            .filter(|(_, r)| **r)
            .map(|(id, _)| *id)
            .collect();
        sqlx::query!(
            "UPDATE vessel_idle SET warned_at = NULL WHERE vessel_id = ANY($1) AND warned_at IS NOT NULL",
            &withdrawn
        )
        .execute(&self.db)
        .await?;
        info!(?report, "undertaker sweep");
        Ok(report)
    }

    async fn notify(
        &self,
        tx: &mut sqlx::PgConnection,
        id: Uuid,
        kind: &str,
        message: &str,
    ) -> Result<(), sqlx::Error> {
        if let Some(v) = vessels::get(&mut *tx, id).await? {
            let kind = vessel_api::events::EventKind::parse(kind);
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
    /// owner's DM says why and how to start again.
    async fn bury(&self, id: Uuid, reason: &str, action: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
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
            info!(vessel = %id, %reason, "burying");
        }
        tx.commit().await?;
        Ok(())
    }

    pub fn every(&self) -> std::time::Duration {
        self.config.every.duration()
    }

    /// Keep: no idle accrual until `until`, the counter back at zero.
    pub async fn keep(db: &PgPool, id: Uuid, until: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "INSERT INTO vessel_idle (vessel_id, keep_until) VALUES ($1, $2)
             ON CONFLICT (vessel_id) DO UPDATE SET keep_until = $2, idle_secs = 0, warned_at = NULL",
            id,
            until
        )
        .execute(db)
        .await?;
        Ok(())
    }
}
