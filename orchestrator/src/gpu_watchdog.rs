//! The GPU watchdog: a host whose DCGM series stop arriving in Prometheus
//! (no sample for `watchdog.stale_after`) is probed at once; its vessels'
//! states are corrected as the probe finds them (the survey's lost path
//! when it does not answer, the reconciler when it does); and one message
//! per incident goes to each owner of a vessel there and to the admins,
//! saying what happened and what to do. An incident lasts from the tick
//! that sees the host stale to the tick that sees all its GPUs fresh; its
//! row (one open per host, enforced by the database) is written with the
//! messages, so a restart or a second replica never tells anyone twice.
//!
//! [`decide`] is the pure part: which hosts open or close an incident.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sqlx::PgPool;
use tracing::{info, warn, Instrument};
use vessel_api::events::{EventKind, EventPayload, HostEvent};

use crate::config::WatchdogConfig;
use crate::domain::VesselState;
use crate::error_chain::chain;
use crate::hosts::HostPool;
use crate::prom::{Freshness, PromError, Prometheus};
use crate::reconciler::{Reconciler, Report};
use crate::store::events;
use crate::store::gpu_incidents::{self, HostedVessel, WatchedGpu};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot read the GPU metrics")]
    Prometheus(#[from] PromError),
    #[error("cannot read or record the incident")]
    Database(#[from] sqlx::Error),
}

/// What one tick changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// Hosts whose incident opens now, with their stale GPUs.
    pub open: BTreeMap<String, Vec<String>>,
    /// Hosts whose incident closes: every GPU reports again.
    pub close: Vec<String>,
}

/// From the GPUs the database knows, what Prometheus has of them, and the
/// incidents open: which open and which close. A host is stale when any of
/// its GPUs went quiet (an exporter that stopped silences all of them; a
/// GPU that fell off the bus, one); it is fresh again when all report.
pub fn decide(gpus: &[WatchedGpu], freshness: &Freshness, open: &BTreeSet<String>) -> Verdicts {
    let mut by_host: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for g in gpus {
        by_host.entry(&g.host).or_default().push(&g.uuid);
    }
    let mut verdicts = Verdicts::default();
    for (host, uuids) in &by_host {
        let stale: Vec<String> = uuids
            .iter()
            .filter(|u| freshness.stale.contains(**u))
            .map(|u| u.to_string())
            .collect();
        if !stale.is_empty() && !open.contains(*host) {
            verdicts.open.insert(host.to_string(), stale);
        }
    }
    for host in open {
        let fresh = by_host
            .get(host.as_str())
            .is_none_or(|uuids| uuids.iter().all(|u| freshness.fresh.contains(*u)));
        if fresh {
            verdicts.close.push(host.clone());
        }
    }
    verdicts
}

/// What the immediate probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// No answer over SSH: its running vessels are now `lost`.
    Unreachable { reason: String },
    /// It answers. `missing`: stale GPUs that nvidia-smi no longer lists;
    /// `lost`: vessels whose container the reconciler found gone.
    Answers {
        gpus: usize,
        missing: Vec<String>,
        lost: usize,
    },
}

impl Finding {
    fn says(&self) -> String {
        match self {
            Finding::Unreachable { reason } => {
                format!("it does not answer ({reason}): its running vessels are marked lost")
            }
            Finding::Answers { gpus, missing, .. } if !missing.is_empty() => format!(
                "it answers, but nvidia-smi no longer lists {} (it lists {gpus} GPUs)",
                missing.join(", ")
            ),
            Finding::Answers { gpus, lost, .. } => {
                let lost = match *lost {
                    0 => String::new(),
                    n => format!("; {n} vessel(s) whose container is gone are marked lost"),
                };
                format!("it answers and nvidia-smi lists all its {gpus} GPUs{lost}")
            }
        }
    }

    fn admin_advice(&self, host: &str) -> String {
        match self {
            Finding::Unreachable { .. } => format!(
                "check `{host}`'s power and network. When it answers again its vessels are \
                 reconciled: those whose containers still run come back."
            ),
            Finding::Answers { missing, .. } if !missing.is_empty() => format!(
                "a GPU dropped off: `/fleet drain {host}` so nothing new lands there, then \
                 check `nvidia-smi` and the kernel log (Xid errors) on the host; a reboot \
                 or a reseat usually brings it back."
            ),
            Finding::Answers { .. } => format!(
                "the host is fine, so the exporter or the scrape is not: check \
                 `systemctl status nvidia-dcgm-exporter` on `{host}` and the target on \
                 Prometheus's /targets page. Meanwhile its GPU vessels count as unknown \
                 use, never idle."
            ),
        }
    }
}

/// The admins' message.
pub fn admin_message(
    host: &str,
    stale: &[String],
    stale_after: std::time::Duration,
    finding: &Finding,
    vessels: &[HostedVessel],
) -> String {
    let on_host = match vessels.len() {
        0 => "No vessels run there.".to_string(),
        n => format!(
            "{n} vessel(s) there: {}; their owners have been told.",
            vessels
                .iter()
                .map(|v| format!("{} ({})", v.name, v.state))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        ":warning: GPU metrics from `{host}` stopped arriving: no DCGM sample for {}s from {}. \
         I probed the host at once: {}. {on_host}\nWhat to do: {}\n\
         (One message per incident; it closes by itself when the metrics return.)",
        stale_after.as_secs(),
        stale.join(", "),
        finding.says(),
        finding.admin_advice(host),
    )
}

/// One owner's message about their vessels on the host.
pub fn owner_message(host: &str, finding: &Finding, theirs: &[&HostedVessel]) -> String {
    let names = theirs
        .iter()
        .map(|v| format!("*{}*", v.name))
        .collect::<Vec<_>>()
        .join(", ");
    let lost: Vec<&str> = theirs
        .iter()
        .filter(|v| v.state() == VesselState::Lost)
        .map(|v| v.name.as_str())
        .collect();
    let (what, todo) = match finding {
        Finding::Unreachable { .. } => (
            format!("The host does not answer, so {names} are marked lost."),
            "Nothing to do yet: if the host comes back with your containers running, they \
             return by themselves. If you need to work now, `/vessel create` a new one; your \
             home directory is on the host and comes back with it."
                .to_string(),
        ),
        Finding::Answers { missing, .. } if !missing.is_empty() => (
            format!(
                "The host answers, but a GPU there ({}) dropped off; {names} may have lost it.",
                missing.join(", ")
            ),
            "Save your work and check `nvidia-smi` inside your vessel. If a GPU is gone, \
             kill it and create a new one."
                .to_string(),
        ),
        Finding::Answers { .. } if !lost.is_empty() => (
            format!(
                "The host answers, but the container of {} is gone: marked lost.",
                lost.join(", ")
            ),
            "`/vessel create` a new one; your home directory is kept on the host.".to_string(),
        ),
        Finding::Answers { .. } => (
            format!("The host answers and {names} still run."),
            "Nothing to do: keep working. Until the metrics are back your GPU use cannot be \
             measured, and you will not be warned or reclaimed as idle meanwhile."
                .to_string(),
        ),
    };
    format!(
        ":warning: GPU metrics from `{host}`, where {names} run, stopped arriving. I checked \
         the host at once. {what}\nWhat to do: {todo} The admins have been told."
    )
}

pub struct GpuWatchdog {
    db: PgPool,
    hosts: Arc<HostPool>,
    reconciler: Arc<Reconciler>,
    prometheus: Prometheus,
    config: WatchdogConfig,
}

/// What a tick did: hosts whose incident it opened and closed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    pub opened: Vec<String>,
    pub closed: Vec<String>,
}

impl GpuWatchdog {
    pub fn new(
        db: PgPool,
        hosts: Arc<HostPool>,
        reconciler: Arc<Reconciler>,
        prometheus: Prometheus,
        config: WatchdogConfig,
    ) -> Self {
        GpuWatchdog {
            db,
            hosts,
            reconciler,
            prometheus,
            config,
        }
    }

    /// One look at the metrics: incidents open and close.
    pub async fn tick(&self) -> Result<TickReport, WatchError> {
        let freshness = self
            .prometheus
            .freshness(self.config.stale_after(), self.config.lookback.duration())
            .await?;
        let gpus = gpu_incidents::watched_gpus(&self.db).await?;
        let open: BTreeSet<String> = gpu_incidents::open_hosts(&self.db)
            .await?
            .into_iter()
            .collect();
        let verdicts = decide(&gpus, &freshness, &open);
        let mut report = TickReport::default();
        for (host, stale) in verdicts.open {
            let span = tracing::info_span!("gpu_incident", %host);
            if self.incident(&host, &stale).instrument(span).await? {
                report.opened.push(host);
            }
        }
        for host in verdicts.close {
            if gpu_incidents::close(&self.db, &host).await? {
                crate::metrics::gpu_incident(false);
                info!(%host, "GPU metrics are back: incident closed");
                report.closed.push(host);
            }
        }
        Ok(report)
    }

    /// Probes the host, corrects its vessels, and opens the incident with
    /// its messages; false when another replica opened it first.
    async fn incident(&self, host: &str, stale: &[String]) -> Result<bool, WatchError> {
        warn!(gpus = ?stale, "GPU metrics stale: probing the host");
        let finding = match crate::survey::survey_one(&self.db, &self.hosts, host).await {
            Err(e) => {
                // The survey's path: an unreachable-host incident, its
                // running vessels lost, the admins told.
                crate::watchdog::after_survey(&self.db, &self.reconciler).await?;
                Finding::Unreachable {
                    reason: chain(&e).to_string(),
                }
            }
            Ok(inventory) => {
                let mut report = Report::default();
                if let Err(e) = self.reconciler.host(host, &mut report).await {
                    warn!(
                        error = %chain(&e),
                        "cannot reconcile the host"
                    );
                }
                let listed: BTreeSet<&str> =
                    inventory.gpus.iter().map(|g| g.uuid.as_str()).collect();
                Finding::Answers {
                    gpus: inventory.gpus.len(),
                    missing: stale
                        .iter()
                        .filter(|u| !listed.contains(u.as_str()))
                        .cloned()
                        .collect(),
                    lost: report.lost,
                }
            }
        };
        let mut tx = self.db.begin().await?;
        let vessels = gpu_incidents::vessels_on_host(&mut tx, host).await?;
        let mut owners: BTreeMap<&str, Vec<&HostedVessel>> = BTreeMap::new();
        for v in &vessels {
            owners.entry(v.owner_id.as_str()).or_default().push(v);
        }
        let mut messages = vec![(
            None,
            admin_message(host, stale, self.config.stale_after(), &finding, &vessels),
        )];
        for (owner, theirs) in &owners {
            messages.push((
                Some(owner.to_string()),
                owner_message(host, &finding, theirs),
            ));
        }
        let opened =
            gpu_incidents::open(&mut tx, host, stale, &finding.says(), messages.len() as i32)
                .await?;
        if opened.is_none() {
            info!("another replica opened this incident");
            return Ok(false);
        }
        for (to, message) in messages {
            let payload = EventPayload::Host(HostEvent {
                host: host.to_string(),
                by: None,
                reason: Some(finding.says()),
                vessels: Some(vessels.len() as u32),
                to,
                message: Some(message),
            });
            events::emit(&mut tx, None, &EventKind::GpuMetricsStale, &payload).await?;
        }
        tx.commit().await?;
        crate::metrics::gpu_incident(true);
        warn!(
            owners = owners.len(),
            ?finding,
            "GPU incident opened; owners and admins told"
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(host: &str, uuid: &str) -> WatchedGpu {
        WatchedGpu {
            host: host.into(),
            uuid: uuid.into(),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    // (story, freshness, open before, hosts that open with their stale
    // GPUs, hosts that close)
    type Case = (
        &'static str,
        Freshness,
        &'static [&'static str],
        Vec<(&'static str, Vec<&'static str>)>,
        Vec<&'static str>,
    );

    fn fresh(f: &[&str], s: &[&str]) -> Freshness {
        Freshness {
            fresh: set(f),
            stale: set(s),
        }
    }

    /// The decision's table: what the exporters say, and what follows.
    fn quiet_gpu_cases() -> Vec<Case> {
        vec![
            (
                "all fresh: nothing",
                fresh(&["A0", "A1", "B0"], &[]),
                &[],
                vec![],
                vec![],
            ),
            (
                "an exporter stopped: its host opens",
                fresh(&["B0"], &["A0", "A1"]),
                &[],
                vec![("a", vec!["A0", "A1"])],
                vec![],
            ),
            (
                "one GPU quiet: its host opens, naming it",
                fresh(&["A0", "B0"], &["A1"]),
                &[],
                vec![("a", vec!["A1"])],
                vec![],
            ),
            (
                "still stale and open: nothing new",
                fresh(&["B0"], &["A0", "A1"]),
                &["a"],
                vec![],
                vec![],
            ),
            (
                "half back is not back",
                fresh(&["A0", "B0"], &["A1"]),
                &["a"],
                vec![],
                vec![],
            ),
            (
                "all back: closes",
                fresh(&["A0", "A1", "B0"], &[]),
                &["a"],
                vec![],
                vec!["a"],
            ),
            (
                "never seen is not stale (nothing was expected)",
                fresh(&["B0"], &[]),
                &[],
                vec![],
                vec![],
            ),
            (
                "a host that left the database closes",
                fresh(&[], &[]),
                &["gone"],
                vec![],
                vec!["gone"],
            ),
        ]
    }

    #[test]
    fn a_host_opens_when_a_gpu_goes_quiet_and_closes_when_all_report() {
        let gpus = [gpu("a", "A0"), gpu("a", "A1"), gpu("b", "B0")];
        let cases = quiet_gpu_cases();
        for (story, freshness, open, opens, closes) in cases {
            let got = decide(&gpus, &freshness, &set(open));
            let want = Verdicts {
                open: opens
                    .into_iter()
                    .map(|(h, u)| (h.to_string(), u.iter().map(|s| s.to_string()).collect()))
                    .collect(),
                close: closes.into_iter().map(String::from).collect(),
            };
            assert_eq!(got, want, "{story}");
        }
    }

    #[test]
    fn messages_say_what_happened_and_what_to_do() {
        let v = |name: &str, owner: &str, state: &str| HostedVessel {
            name: name.into(),
            owner_id: owner.into(),
            state: state.into(),
        };
        let vessels = [v("train", "UALICE", "running"), v("eval", "UBOB", "lost")];
        let fine = Finding::Answers {
            gpus: 4,
            missing: vec![],
            lost: 0,
        };
        let admin = admin_message(
            "gpu-1",
            &["GPU-1".into()],
            std::time::Duration::from_secs(45),
            &fine,
            &vessels,
        );
        assert!(
            admin.contains("no DCGM sample for 45s from GPU-1"),
            "{admin}"
        );
        assert!(admin.contains("nvidia-dcgm-exporter"), "{admin}");
        assert!(admin.contains("train (running), eval (lost)"), "{admin}");
        let owner = owner_message("gpu-1", &fine, &[&vessels[0]]);
        assert!(owner.contains("*train* still run"), "{owner}");
        assert!(owner.contains("not be warned or reclaimed"), "{owner}");
        let dark = Finding::Unreachable {
            reason: "no answer within 5s".into(),
        };
        let owner = owner_message("gpu-1", &dark, &[&vessels[1]]);
        assert!(owner.contains("marked lost"), "{owner}");
        assert!(owner.contains("return by themselves"), "{owner}");
        let admin = admin_message("gpu-1", &["GPU-1".into()], Default::default(), &dark, &[]);
        assert!(admin.contains("power and network"), "{admin}");
        assert!(admin.contains("No vessels run there"), "{admin}");
    }
}
