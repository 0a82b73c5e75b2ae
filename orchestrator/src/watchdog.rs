//! The watchdog: after each survey, hosts that stopped answering open an
//! incident (one admin message), and their running vessels become `lost`
//! (owners told) — their resources stay reserved, since nobody knows yet
//! whether the containers still run. A host that answers again closes the
//! incident, and the reconciler settles its vessels.

use sqlx::PgPool;
use tracing::{warn, Instrument};
use vessel_api::events::{EventKind, EventPayload, HostEvent};

use crate::domain::VesselState;
use crate::error_chain::chain;
use crate::reconciler::{Reconciler, Report};
use crate::store::hosts::{self as host_store, Unreachable};
use crate::store::{events, vessels};

pub async fn after_survey(db: &PgPool, reconciler: &Reconciler) -> Result<(), sqlx::Error> {
    for host in host_store::open_incidents(db).await? {
        let span = tracing::info_span!("incident", host = %host.name);
        unreachable(db, host).instrument(span).await?;
    }
    for host in host_store::close_incidents(db).await? {
        let span = tracing::info_span!("incident", %host);
        recovered(db, reconciler, &host).instrument(span).await?;
    }
    Ok(())
}

/// Its running vessels are lost, and the admins told, in one transaction.
async fn unreachable(db: &PgPool, host: Unreachable) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let reason = host.probe_error.unwrap_or_else(|| "no answer".into());
    let running = vessels::running_on_host(&mut tx, &host.name).await?;
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
        to: None,
        message: None,
    });
    events::emit(&mut tx, None, &EventKind::HostUnreachable, &payload).await?;
    tx.commit().await?;
    crate::metrics::host_incident();
    warn!(vessels = running.len(), "host unreachable: incident opened");
    Ok(())
}

/// The reconciler settles its vessels, then the admins are told.
async fn recovered(db: &PgPool, reconciler: &Reconciler, host: &str) -> Result<(), sqlx::Error> {
    let mut report = Report::default();
    if let Err(e) = reconciler.host(host, &mut report).await {
        warn!(
            error = %chain(&e),
            "cannot reconcile a recovered host"
        );
    }
    let mut tx = db.begin().await?;
    let payload = EventPayload::Host(HostEvent {
        reason: Some(format!(
            "{} vessels back, {} reservations freed",
            report.recovered, report.freed
        )),
        host: host.to_string(),
        by: None,
        vessels: Some(report.recovered as u32),
        to: None,
        message: None,
    });
    events::emit(&mut tx, None, &EventKind::HostRecovered, &payload).await?;
    tx.commit().await
}
