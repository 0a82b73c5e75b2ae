//! The reconciler: containers carrying our labels vs. vessel rows, per
//! reachable host (observe → diff → act → record). Orphan containers are
//! removed; a running vessel whose container is gone is `lost` and its
//! resources freed (the host answered, so "gone" is confirmed); a `lost`
//! vessel whose container is back is `running` again; reservations of ended
//! vessels are freed. The diff is [`decide`], a pure function of what Docker
//! lists and what the rows say.
//!
//! The rows are read before the containers are listed: a listing taken
//! first misses a vessel that starts in between, whose fresh row then says
//! `running` without a container, and it would be marked lost while it
//! runs. Read first, a row can only be older than the listing, and every
//! act re-checks in its own statement that the row is still the version
//! read; a container whose vessel went live after the read is left for
//! the next run.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use bollard::Docker;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use crate::conductor::spec::{LABEL_FLEET, LABEL_HOST, LABEL_ID};
use crate::domain::VesselState;
use crate::error_chain::chain;
use crate::hosts::{HostError, HostPool};
use crate::store::vessels::LiveVessel;
use crate::store::{bot_state, events, hosts as host_store, vessels};

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub hosts: usize,
    pub orphans_removed: usize,
    pub lost: usize,
    pub recovered: usize,
    pub freed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("cannot list the host's containers")]
    List(#[source] bollard::errors::Error),
    #[error("cannot read or record the vessels")]
    Database(#[from] sqlx::Error),
}

/// A container carrying our labels, as Docker lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Docker's id, to remove it by.
    pub docker_id: String,
    pub name: String,
    /// The vessel its label names, when the label is a vessel id.
    pub vessel: Option<Uuid>,
    pub running: bool,
}

/// What one host needs. A vessel that is fine gets no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A container no live vessel owns, or a dead one of a vessel that
    /// should run: removed (the vessel is handled on its own).
    Orphan { docker_id: String, name: String },
    /// A running vessel whose container is gone: `lost`, its devices freed.
    Vanished(Uuid),
    /// A `lost` vessel whose container runs again: `running`.
    Back(Uuid),
    /// A `lost` vessel confirmed gone on a reachable host: now it is safe to
    /// hand its devices out again.
    Gone(Uuid),
}

/// The diff between a host's containers and the rows of its live vessels,
/// read before the listing. `newer`: vessels live on the host when read
/// again after the listing but not in `vessels` (they started in between):
/// their containers are not orphans, they are judged next time.
pub fn decide(
    containers: &[Observed],
    vessels: &[(Uuid, VesselState)],
    newer: &HashSet<Uuid>,
) -> Vec<Decision> {
    let states: HashMap<Uuid, VesselState> = vessels.iter().copied().collect();
    let mut present = HashSet::new();
    let mut decisions = Vec::new();
    for c in containers {
        if c.vessel.is_some_and(|id| newer.contains(&id)) {
            continue;
        }
        match c.vessel.and_then(|id| states.get(&id).map(|s| (id, *s))) {
            Some((id, _)) if c.running => {
                present.insert(id);
            }
            Some((id, VesselState::Provisioning)) => {
                // The conductor owns it until it is running or failed.
                present.insert(id);
            }
            // A sleeping (or waking) vessel's stopped container is its disk.
            Some((
                id,
                VesselState::Hibernating | VesselState::Hibernated | VesselState::Pending,
            )) => {
                present.insert(id);
            }
            _ => decisions.push(Decision::Orphan {
                docker_id: c.docker_id.clone(),
                name: c.name.clone(),
            }),
        }
    }
    for (id, state) in vessels {
        match (state, present.contains(id)) {
            // A sleeper (or a waiting wake) whose container is gone has
            // lost its disk: nothing to wake.
            (VesselState::Running | VesselState::Hibernated | VesselState::Pending, false) => {
                decisions.push(Decision::Vanished(*id))
            }
            (VesselState::Lost, true) => decisions.push(Decision::Back(*id)),
            (VesselState::Lost, false) => decisions.push(Decision::Gone(*id)),
            _ => {}
        }
    }
    decisions
}

pub struct Reconciler {
    db: PgPool,
    hosts: Arc<HostPool>,
    fleet: String,
    retention: std::time::Duration,
}

impl Reconciler {
    pub fn new(
        db: PgPool,
        hosts: Arc<HostPool>,
        fleet: String,
        retention: std::time::Duration,
    ) -> Self {
        Reconciler {
            db,
            hosts,
            fleet,
            retention,
        }
    }

    /// The outbox and the bot's per-vessel message references do not grow
    /// forever: what is older than the retention and settled goes. The
    /// bot's seen Slack signatures go after two signature windows.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let secs = self.retention.as_secs_f64();
        let events = events::prune(&self.db, secs).await?;
        let refs = bot_state::prune_message_refs(&self.db, secs).await?;
        let seen =
            bot_state::prune_once(&self.db, "slack-seen:", std::time::Duration::from_secs(600))
                .await?;
        // A tick's row only guards that tick against a second replica.
        let ticks = crate::store::ticks::prune(&self.db, 86_400.0).await?;
        Ok(events + refs + seen + ticks)
    }

    pub async fn run_once(&self) -> Result<Report, sqlx::Error> {
        let mut report = Report {
            freed: vessels::free_ended_reservations(&self.db).await? as usize,
            ..Report::default()
        };
        for host in host_store::online_names(&self.db).await? {
            if self.hosts.spec(&host).is_none() {
                continue;
            }
            let span = tracing::info_span!("reconcile", %host);
            match self.host(&host, &mut report).instrument(span).await {
                Ok(()) => report.hosts += 1,
                Err(e) => {
                    warn!(%host, error = %chain(&e), "cannot reconcile the host")
                }
            }
        }
        match self.prune().await {
            Ok(n) if n > 0 => info!(pruned = n, "old events and message references removed"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot prune old events"),
        }
        if report.orphans_removed + report.lost + report.recovered + report.freed > 0 {
            info!(?report, "reconciled");
        }
        Ok(report)
    }

    /// One reachable host: read the rows, then observe, diff, act.
    pub async fn host(&self, host: &str, report: &mut Report) -> Result<(), ReconcileError> {
        let rows = self.rows(host).await?;
        self.host_from(host, &rows, report).await
    }

    /// The rows a pass over `host` decides from: read before its listing.
    pub async fn rows(&self, host: &str) -> Result<Vec<LiveVessel>, sqlx::Error> {
        vessels::live_on_host(&self.db, host).await
    }

    /// A pass over `host` from rows read earlier (by [`Reconciler::rows`]):
    /// lists the containers now, and acts only where the rows, re-checked
    /// in each act's statement, are still as read. Tests call the halves
    /// apart to start or change a vessel in between.
    pub async fn host_from(
        &self,
        host: &str,
        rows: &[LiveVessel],
        report: &mut Report,
    ) -> Result<(), ReconcileError> {
        let link = self.hosts.link(host).await?;
        let containers = self.observe(&link.docker, host).await?;
        let read: HashMap<Uuid, DateTime<Utc>> =
            rows.iter().map(|r| (r.id, r.updated_at)).collect();
        // Read again after the listing: a vessel that went live since the
        // first read may have a container in the listing, not an orphan.
        let newer: HashSet<Uuid> = vessels::live_on_host(&self.db, host)
            .await?
            .into_iter()
            .map(|r| r.id)
            .filter(|id| !read.contains_key(id))
            .collect();
        let states: Vec<(Uuid, VesselState)> = rows.iter().map(|r| (r.id, r.state)).collect();
        for decision in decide(&containers, &states, &newer) {
            let span = match &decision {
                Decision::Orphan { name, .. } => tracing::info_span!("orphan", container = %name),
                Decision::Vanished(id) | Decision::Back(id) | Decision::Gone(id) => {
                    tracing::info_span!("vessel", vessel = %id)
                }
            };
            self.act(&link.docker, host, decision, &read, report)
                .instrument(span)
                .await?;
        }
        Ok(())
    }

    /// The containers of this fleet on `host`, dead ones included.
    async fn observe(&self, docker: &Docker, host: &str) -> Result<Vec<Observed>, ReconcileError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_FLEET}={}", self.fleet),
                format!("{LABEL_HOST}={host}"),
            ],
        )]);
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(ReconcileError::List)?;
        Ok(containers
            .into_iter()
            .map(|c| Observed {
                vessel: c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_ID))
                    .and_then(|i| Uuid::parse_str(i).ok()),
                running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                name: c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .cloned()
                    .unwrap_or_default(),
                docker_id: c.id.unwrap_or_default(),
            })
            .collect())
    }

    async fn act(
        &self,
        docker: &Docker,
        host: &str,
        decision: Decision,
        read: &HashMap<Uuid, DateTime<Utc>>,
        report: &mut Report,
    ) -> Result<(), sqlx::Error> {
        // Vessel decisions come from the rows, so each has its version.
        let version = |id: &Uuid| read.get(id).copied();
        match decision {
            Decision::Orphan { docker_id, name } => {
                if remove_orphan(docker, &docker_id, &name).await {
                    report.orphans_removed += 1;
                }
            }
            Decision::Vanished(id) => {
                let reason = format!("its container on {host} is gone");
                if self.mark_lost_and_free(id, &reason, version(&id)).await? {
                    report.lost += 1;
                } else {
                    info!("not marked lost: the row changed since it was read");
                }
            }
            Decision::Back(id) => {
                if self.mark_back(id, host, version(&id)).await? {
                    report.recovered += 1;
                }
            }
            Decision::Gone(id) => {
                if let Some(read) = version(&id) {
                    let mut tx = self.db.begin().await?;
                    report.freed +=
                        vessels::free_lost_reservation_as_read(&mut tx, id, read).await? as usize;
                    tx.commit().await?;
                }
            }
        }
        Ok(())
    }

    /// True when the vessel, still `running` and unchanged since `read`,
    /// is now `lost` and its devices freed.
    async fn mark_lost_and_free(
        &self,
        id: Uuid,
        reason: &str,
        read: Option<DateTime<Utc>>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let moved = vessels::transition_as_read(
            &mut tx,
            id,
            &[
                VesselState::Running,
                VesselState::Hibernated,
                VesselState::Pending,
            ],
            VesselState::Lost,
            Some(reason),
            read,
        )
        .await?
        .is_some();
        if moved {
            vessels::free_reservation(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// True when the vessel moved back to `running`.
    async fn mark_back(
        &self,
        id: Uuid,
        host: &str,
        read: Option<DateTime<Utc>>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let moved = vessels::transition_as_read(
            &mut tx,
            id,
            &[VesselState::Lost],
            VesselState::Running,
            Some(&format!(
                "{host} answers again and the vessel is still running"
            )),
            read,
        )
        .await?;
        tx.commit().await?;
        Ok(moved.is_some())
    }
}

/// True when it is gone; a failure is logged and left for the next run.
async fn remove_orphan(docker: &Docker, docker_id: &str, name: &str) -> bool {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(docker_id, Some(options)).await {
        Ok(()) => {
            info!(container = %name, "removed an orphan container");
            true
        }
        Err(e) => {
            warn!(container = %name, error = %e, "cannot remove an orphan");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VesselState::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn container(vessel: Option<Uuid>, running: bool) -> Observed {
        let name = vessel.map_or("stray".into(), |v| format!("vessel-{v}"));
        Observed {
            docker_id: format!("docker-{name}"),
            name,
            vessel,
            running,
        }
    }

    /// A story, the host's containers, the vessel's state, what is decided.
    type Case = (
        &'static str,
        Vec<Observed>,
        Option<VesselState>,
        Vec<Decision>,
    );

    fn orphan(c: &Observed) -> Decision {
        Decision::Orphan {
            docker_id: c.docker_id.clone(),
            name: c.name.clone(),
        }
    }

    #[test]
    fn the_reconciler_decides_from_containers_and_rows() {
        let v = id(1);
        let up = container(Some(v), true);
        let dead = container(Some(v), false);
        let stranger = container(Some(id(2)), true);
        let unlabelled = container(None, true);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("running with its container: fine", vec![up.clone()], Some(Running), vec![]),
            ("running without its container: vanished", vec![], Some(Running), vec![Decision::Vanished(v)]),
            ("running with a dead container: the container goes, the vessel is lost",
             vec![dead.clone()], Some(Running), vec![orphan(&dead), Decision::Vanished(v)]),
            ("lost and its container runs: back", vec![up.clone()], Some(Lost), vec![Decision::Back(v)]),
            ("lost and no container: gone, its devices go back", vec![], Some(Lost), vec![Decision::Gone(v)]),
            ("lost with a dead container: removed, and gone",
             vec![dead.clone()], Some(Lost), vec![orphan(&dead), Decision::Gone(v)]),
            ("provisioning, container not started yet: the conductor's", vec![dead.clone()], Some(Provisioning), vec![]),
            ("provisioning, no container yet: fine", vec![], Some(Provisioning), vec![]),
            ("stopping with its container: the conductor's", vec![up.clone()], Some(Stopping), vec![]),
            ("stopping with a dead container: removed", vec![dead.clone()], Some(Stopping), vec![orphan(&dead)]),
            ("hibernated with its stopped container: its disk, kept", vec![dead.clone()], Some(Hibernated), vec![]),
            ("hibernating, container still up: the conductor's", vec![up.clone()], Some(Hibernating), vec![]),
            ("a waiting wake with its stopped container: kept", vec![dead.clone()], Some(Pending), vec![]),
            ("hibernated without its container: its disk is gone, lost", vec![], Some(Hibernated), vec![Decision::Vanished(v)]),
            ("a container of no live vessel: orphan", vec![stranger.clone()], None, vec![orphan(&stranger)]),
            ("a container whose label is no vessel id: orphan", vec![unlabelled.clone()], None, vec![orphan(&unlabelled)]),
        ];
        for (story, containers, state, expected) in cases {
            let vessels: Vec<(Uuid, VesselState)> = state.map(|s| (v, s)).into_iter().collect();
            assert_eq!(
                decide(&containers, &vessels, &HashSet::new()),
                expected,
                "{story}"
            );
        }
    }

    #[test]
    fn each_vessel_is_judged_on_its_own_container() {
        let (a, b) = (id(1), id(2));
        let decisions = decide(
            &[container(Some(a), true)],
            &[(a, Running), (b, Running)],
            &HashSet::new(),
        );
        assert_eq!(decisions, vec![Decision::Vanished(b)]);
    }

    #[test]
    fn a_vessel_that_starts_after_the_rows_are_read_is_not_an_orphan() {
        // Not in the rows read before the listing, live when read after it:
        // it started in between. Its container, running or not yet started,
        // is left alone; a container of a vessel that is not live at all
        // still goes.
        let (fresh, ended) = (id(1), id(2));
        let newer = HashSet::from([fresh]);
        for running in [true, false] {
            let stray = container(Some(ended), running);
            let decisions = decide(
                &[container(Some(fresh), running), stray.clone()],
                &[],
                &newer,
            );
            assert_eq!(decisions, vec![orphan(&stray)], "running: {running}");
        }
    }
}
