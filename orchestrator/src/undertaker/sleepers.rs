//! The undertaker's I/O for hibernating queues: idle measured as GPUs and
//! processes both, the warning's words, sending an idle vessel to sleep,
//! and judging the sleepers (buried after `bury_hibernated_after`, warned
//! a day ahead; the oldest beyond a person's `max_hibernated` buried).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::info;
use vessel_api::events::EventKind;

use super::hibernate::{self, Sleeper as Verdict};
use super::{gpu_usage, Decision, SweepReport, Undertaker, Usage};
use crate::domain::VesselState;
use crate::store::idle::{self, AsRead, RunningVessel, Sleeper};
use crate::store::{audit, jobs, vessels};

impl Undertaker {
    /// Idle for hibernation: the GPUs by DCGM and the processes by their
    /// cgroup's CPU time, both.
    pub(super) async fn usage_for_sleep(
        &self,
        v: &RunningVessel,
        gpu: &std::collections::HashMap<String, f64>,
    ) -> Usage {
        let cpu = match &v.host {
            Some(h) => self.cpu_usage(h, v.id, v.cores.len()).await,
            None => Usage::Unknown,
        };
        if v.gpu_uuids.is_empty() {
            return cpu;
        }
        let gpus = gpu_usage(&v.gpu_uuids, gpu, self.config.gpu_idle_below);
        hibernate::both(gpus, cpu)
    }

    /// The warning of a hibernating queue, in words: when, and what
    /// hibernation ends and keeps.
    pub(super) fn hibernation_note(
        &self,
        v: &RunningVessel,
        decision: &Decision,
        p: &hibernate::SleepPolicy,
        now: DateTime<Utc>,
    ) -> (EventKind, String) {
        let left = p
            .hibernate_after
            .saturating_sub(Duration::from_secs_f64(decision.idle_secs.max(0.0)))
            .max(p.warn_before);
        let at = now + chrono::Duration::from_std(left).unwrap_or_default();
        let message = format!(
            "*{}* has been idle for {} min (its GPUs and its processes) and will be hibernated at {} unless you keep it. \
             Hibernating ends its running processes; every file, its address and its host key are kept, and waking brings it back.",
            v.name,
            (decision.idle_secs / 60.0).round(),
            at.format("%H:%M UTC")
        );
        (EventKind::HibernationWarning, message)
    }

    /// Sends an idle vessel to sleep, if its ledger is still as the sweep
    /// read it (a Keep pressed since wins). True when sent.
    pub(super) async fn hibernate(
        &self,
        v: &RunningVessel,
        idle_secs: f64,
        _now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let read = AsRead {
            expires_at: v.expires_at,
            warned_at: v.warned_at,
            keep_until: v.keep_until,
        };
        if !idle::lock_for_idle_burial(&mut tx, v.id, &read).await? {
            info!("not hibernated: kept, extended or changed since the sweep read it");
            tx.commit().await?;
            return Ok(false);
        }
        let reason = format!("hibernated after {:.0} idle minutes", idle_secs / 60.0);
        let moved = vessels::transition(
            &mut tx,
            v.id,
            &[VesselState::Running],
            VesselState::Hibernating,
            Some(&reason),
        )
        .await?;
        if moved.is_some() {
            jobs::enqueue(&mut tx, v.id).await?;
            audit::record(
                &mut tx,
                "undertaker",
                audit::Action::VesselHibernate,
                Some(&v.id.to_string()),
                "ok",
                serde_json::json!({ "reason": reason }),
            )
            .await?;
            info!(%reason, "hibernating");
        }
        tx.commit().await?;
        if moved.is_some() {
            crate::metrics::hibernating(crate::metrics::Hibernation::Idle);
        }
        Ok(moved.is_some())
    }

    /// Every sleeper: warned a day before `bury_hibernated_after` runs out,
    /// then buried; and beyond a person's `max_hibernated` in a queue, the
    /// oldest buried at once (the rows come newest first per owner and
    /// queue).
    pub(super) async fn judge_sleepers(
        &self,
        now: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> Result<(), sqlx::Error> {
        let sleepers = idle::sleepers(&self.db).await?;
        let mut kept: Option<(&str, &str, u32)> = None;
        for s in &sleepers {
            let Some(rules) = self.queue_rules.get(&s.queue) else {
                continue;
            };
            let n = match kept {
                Some((o, q, n)) if o == s.owner_id && q == s.queue => n + 1,
                _ => 1,
            };
            kept = Some((&s.owner_id, &s.queue, n));
            if n > rules.max_hibernated {
                let reason = format!(
                    "over its owner's limit of {} hibernated vessels in {}: the oldest goes",
                    rules.max_hibernated, s.queue
                );
                if self.bury_sleeper(s, &reason).await? {
                    report.sleepers_buried += 1;
                }
                continue;
            }
            match hibernate::decide_sleeper(s.hibernated_at, s.burial_warned_at, now, &rules.policy)
            {
                Verdict::Nothing => {}
                Verdict::WarnBurial => {
                    if self.warn_burial(s, &rules.policy, now).await? {
                        report.sleepers_warned += 1;
                    }
                }
                Verdict::Bury => {
                    let days = rules.policy.bury_after.as_secs() / 86_400;
                    let reason = format!("hibernated for {days} days without a wake");
                    if self.bury_sleeper(s, &reason).await? {
                        report.sleepers_buried += 1;
                    }
                }
            }
        }
        Ok(())
    }

    async fn warn_burial(
        &self,
        s: &Sleeper,
        p: &hibernate::SleepPolicy,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let marked = idle::mark_burial_warned(&mut tx, s.id, now).await?;
        if marked {
            let bury_at = (s.hibernated_at
                + chrono::Duration::from_std(p.bury_after).unwrap_or_default())
            .max(now + chrono::Duration::days(1));
            let message = format!(
                "*{}* has been hibernated since {} and will be buried on {} unless you wake it. Its home directory is kept either way.",
                s.name,
                s.hibernated_at.format("%a %d %b"),
                bury_at.format("%a %d %b %H:%M UTC")
            );
            self.notify(&mut tx, s.id, EventKind::BurialWarning, &message)
                .await?;
        }
        tx.commit().await?;
        Ok(marked)
    }

    /// A sleeper goes: the conductor removes its container (its disk).
    async fn bury_sleeper(&self, s: &Sleeper, reason: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let moved = vessels::transition(
            &mut tx,
            s.id,
            &[VesselState::Hibernated],
            VesselState::Stopping,
            Some(&format!("buried by the undertaker: {reason}")),
        )
        .await?;
        if moved.is_some() {
            jobs::enqueue(&mut tx, s.id).await?;
            audit::record(
                &mut tx,
                "undertaker",
                audit::Action::VesselBury,
                Some(&s.id.to_string()),
                "ok",
                serde_json::json!({ "reason": reason }),
            )
            .await?;
            info!(vessel = %s.id, %reason, "burying a sleeper");
        }
        tx.commit().await?;
        if moved.is_some() {
            let asleep = (self.clock.now() - s.hibernated_at)
                .to_std()
                .unwrap_or_default();
            crate::metrics::slept(s.gpus, asleep);
        }
        Ok(moved.is_some())
    }
}
