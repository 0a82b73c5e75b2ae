//! The reconciler: containers carrying our labels vs. vessel rows, per
//! reachable host (observe → diff → act → record). Orphan containers are
//! removed; a running vessel whose container is gone is `lost` and its
//! resources freed (the host answered, so "gone" is confirmed); a `lost`
//! vessel whose container is back is `running` again; reservations of ended
//! vessels are freed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use sqlx::PgPool;
use tracing::{info, warn};
use uuid::Uuid;

use crate::conductor::spec::{LABEL_FLEET, LABEL_HOST, LABEL_ID};
use crate::domain::VesselState;
use crate::hosts::HostPool;
use crate::store::vessels;

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub hosts: usize,
    pub orphans_removed: usize,
    pub lost: usize,
    pub recovered: usize,
    pub freed: usize,
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
    /// forever: what is older than the retention and settled goes.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let secs = self.retention.as_secs_f64();
        let events = sqlx::query!(
            "DELETE FROM events WHERE created_at < now() - make_interval(secs => $1)",
            secs
        )
        .execute(&self.db)
        .await?
        .rows_affected();
        let refs = sqlx::query!(
            "DELETE FROM bot_state b USING vessels v
             WHERE b.key = 'slack-message:' || v.id::text
               AND v.ended_at < now() - make_interval(secs => $1)",
            secs
        )
        .execute(&self.db)
        .await?
        .rows_affected();
        Ok(events + refs)
    }

    pub async fn run_once(&self) -> Result<Report, sqlx::Error> {
        let mut report = Report::default();
        // Ended vessels never hold anything.
        report.freed += sqlx::query!(
            "DELETE FROM reservations r USING vessels v
             WHERE r.vessel_id = v.id AND v.state IN ('buried', 'failed')"
        )
        .execute(&self.db)
        .await?
        .rows_affected() as usize;
        let online: Vec<String> =
            sqlx::query_scalar!("SELECT name FROM hosts WHERE online ORDER BY name")
                .fetch_all(&self.db)
                .await?;
        for host in online {
            if self.hosts.spec(&host).is_none() {
                continue;
            }
            match self.host(&host, &mut report).await {
                Ok(()) => report.hosts += 1,
                Err(e) => warn!(%host, error = %e, "cannot reconcile the host"),
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

    /// One reachable host.
    pub async fn host(&self, host: &str, report: &mut Report) -> Result<(), String> {
        let link = self.hosts.link(host).await.map_err(|e| e.to_string())?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_FLEET}={}", self.fleet),
                format!("{LABEL_HOST}={host}"),
            ],
        )]);
        let containers = link
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| e.to_string())?;
        let rows = sqlx::query!(
            "SELECT v.id, v.state FROM vessels v JOIN hosts h ON h.id = v.host_id
             WHERE h.name = $1 AND v.state IN ('provisioning', 'running', 'stopping', 'lost')",
            host
        )
        .fetch_all(&self.db)
        .await
        .map_err(|e| e.to_string())?;
        let states: HashMap<Uuid, String> = rows.into_iter().map(|r| (r.id, r.state)).collect();
        let mut present = HashSet::new();
        for c in &containers {
            let labels = c.labels.clone().unwrap_or_default();
            let id = labels.get(LABEL_ID).and_then(|i| Uuid::parse_str(i).ok());
            let running = c.state.as_ref().map(|s| s.to_string()) == Some("running".into());
            match id.and_then(|id| states.get(&id).map(|s| (id, s))) {
                Some((id, _)) if running => {
                    present.insert(id);
                }
                Some((id, state)) if state == "provisioning" => {
                    // The conductor owns it until it is running or failed.
                    present.insert(id);
                }
                _ => {
                    // No live row, or a dead container of a vessel that
                    // should run: remove it (the vessel is handled below).
                    let name = c
                        .names
                        .as_ref()
                        .and_then(|n| n.first())
                        .cloned()
                        .unwrap_or_default();
                    let target = c.id.clone().unwrap_or_default();
                    match link
                        .docker
                        .remove_container(
                            &target,
                            Some(RemoveContainerOptions {
                                force: true,
                                v: true,
                                ..Default::default()
                            }),
                        )
                        .await
                    {
                        Ok(()) => {
                            info!(%host, container = %name, "removed an orphan container");
                            report.orphans_removed += 1;
                        }
                        Err(e) => {
                            warn!(%host, container = %name, error = %e, "cannot remove an orphan")
                        }
                    }
                }
            }
        }
        for (id, state) in states {
            let here = present.contains(&id);
            match (state.as_str(), here) {
                ("running", false) => {
                    self.mark_lost_and_free(id, &format!("its container on {host} is gone"))
                        .await
                        .map_err(|e| e.to_string())?;
                    report.lost += 1;
                }
                ("lost", true) => {
                    let mut tx = self.db.begin().await.map_err(|e| e.to_string())?;
                    if vessels::transition(
                        &mut tx,
                        id,
                        &[VesselState::Lost],
                        VesselState::Running,
                        Some(&format!(
                            "{host} answers again and the vessel is still running"
                        )),
                    )
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some()
                    {
                        report.recovered += 1;
                    }
                    tx.commit().await.map_err(|e| e.to_string())?;
                }
                ("lost", false) => {
                    // Confirmed gone on a reachable host: now it is safe to
                    // hand its devices out again.
                    let mut tx = self.db.begin().await.map_err(|e| e.to_string())?;
                    let freed = sqlx::query!("DELETE FROM reservations WHERE vessel_id = $1", id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| e.to_string())?
                        .rows_affected();
                    tx.commit().await.map_err(|e| e.to_string())?;
                    report.freed += freed as usize;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn mark_lost_and_free(&self, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        if vessels::transition(
            &mut tx,
            id,
            &[VesselState::Running],
            VesselState::Lost,
            Some(reason),
        )
        .await?
        .is_some()
        {
            vessels::free_reservation(&mut tx, id).await?;
        }
        tx.commit().await
    }
}
