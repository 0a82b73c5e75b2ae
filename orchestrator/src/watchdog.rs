//! The watchdog: after each survey, hosts that stopped answering open an
//! incident (one admin message), and their running vessels become `lost`
//! (owners told) — their resources stay reserved, since nobody knows yet
//! whether the containers still run. A host that answers again closes the
//! incident, and the reconciler settles its vessels.

use sqlx::PgPool;
use tracing::warn;
use vessel_api::events::{EventKind, EventPayload, HostEvent};

use crate::domain::VesselState;
use crate::reconciler::{Reconciler, Report};
use crate::store::{events, vessels};

pub async fn after_survey(db: &PgPool, reconciler: &Reconciler) -> Result<(), sqlx::Error> {
    let opened = sqlx::query!(
        "UPDATE hosts SET incident_since = now() WHERE NOT online AND incident_since IS NULL
           AND probed_at IS NOT NULL
         RETURNING name, probe_error"
    )
    .fetch_all(db)
    .await?;
    for host in opened {
        let mut tx = db.begin().await?;
        let reason = host
            .probe_error
            .clone()
            .unwrap_or_else(|| "no answer".into());
        let running: Vec<uuid::Uuid> = sqlx::query_scalar!(
            "SELECT v.id FROM vessels v JOIN hosts h ON h.id = v.host_id
             WHERE h.name = $1 AND v.state = 'running'",
            host.name
        )
        .fetch_all(&mut *tx)
        .await?;
        for id in &running {
            vessels::transition(
                &mut tx,
                *id,
                &[VesselState::Running],
                VesselState::Lost,
                Some(&format!(
                    "its host {} stopped answering ({reason})",
                    host.name
                )),
            )
            .await?;
        }
        let payload = EventPayload::Host(HostEvent {
            host: host.name.clone(),
            by: None,
            reason: Some(reason.clone()),
            vessels: Some(running.len() as u32),
        });
        events::emit(&mut tx, None, &EventKind::HostUnreachable, &payload).await?;
        tx.commit().await?;
        warn!(host = %host.name, vessels = running.len(), "host unreachable: incident opened");
    }
    let closed = sqlx::query_scalar!(
        "UPDATE hosts SET incident_since = NULL WHERE online AND incident_since IS NOT NULL
         RETURNING name"
    )
    .fetch_all(db)
    .await?;
    for host in closed {
        let mut report = Report::default();
        if let Err(e) = reconciler.host(&host, &mut report).await {
            warn!(%host, error = %e, "cannot reconcile a recovered host");
        }
        let mut tx = db.begin().await?;
        let payload = EventPayload::Host(HostEvent {
            reason: Some(format!(
                "{} vessels back, {} reservations freed",
                report.recovered, report.freed
            )),
            host,
            by: None,
            vessels: Some(report.recovered as u32),
        });
        events::emit(&mut tx, None, &EventKind::HostRecovered, &payload).await?;
        tx.commit().await?;
    }
    Ok(())
}
