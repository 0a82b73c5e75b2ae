//! The survey: probes every host in the inventory over SSH and records what
//! it found, or why it could not. Run at start-up and then periodically, so a
//! host that comes back takes vessels again.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use sqlx::PgPool;
use tracing::{info, warn};

use crate::error_chain::chain;
use crate::hosts::probe::{self, Inventory, ProbeError};
use crate::hosts::storage::{self, Storage};
use crate::hosts::{HostError, HostPool};
use crate::store::hosts as host_store;

/// Why a host could not be probed. The host is marked offline with the
/// whole chain as its reason.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    #[error("{0} is not in the inventory")]
    NotInInventory(String),
    #[error(transparent)]
    Link(#[from] HostError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("its Docker engine did not say what storage it has")]
    Storage(#[source] bollard::errors::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

pub async fn survey(db: &PgPool, hosts: &Arc<HostPool>) {
    let names: Vec<String> = hosts.specs().map(|s| s.name.clone()).collect();
    join_all(names.iter().map(|name| survey_one(db, hosts, name))).await;
    if let Err(e) = host_store::retire_missing(db, &names).await {
        warn!(error = %e, "cannot retire hosts that left the inventory");
    }
}

/// Probes one host now and records what it found: its inventory, or why
/// it could not (then the host takes no new vessels). The GPU watchdog
/// calls it at once for a host whose metrics went stale.
pub async fn survey_one(
    db: &PgPool,
    hosts: &Arc<HostPool>,
    name: &str,
) -> Result<Inventory, SurveyError> {
    let Some(spec) = hosts.spec(name) else {
        return Err(SurveyError::NotInInventory(name.to_string()));
    };
    let result = probe_now(hosts, name).await;
    crate::metrics::host_probed(result.is_ok());
    let recorded = match &result {
        Ok((inventory, storage)) => {
            info!(
                host = name,
                cores = inventory.cores.len(),
                gpus = inventory.gpus.len(),
                memory = inventory.memory_bytes,
                storage = %storage.driver,
                disk_quota = storage.limits_size,
                "host probed"
            );
            match host_store::register(db, spec, inventory).await {
                Ok(_) => host_store::record_storage(db, name, storage).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => {
            hosts.forget(name);
            let reason = chain(e).to_string();
            warn!(host = name, %reason, "host probe failed");
            host_store::mark_offline(db, name, &spec.queue, &reason).await
        }
    };
    if let Err(e) = recorded {
        warn!(host = name, error = %e, "cannot record the probe");
    }
    result.map(|(inventory, _)| inventory)
}

/// One probe over the host's connection: its hardware, and its engine's
/// storage driver. A host that vanished leaves a half-open connection that
/// never answers: the probe has a deadline of its own.
async fn probe_now(hosts: &HostPool, name: &str) -> Result<(Inventory, Storage), SurveyError> {
    let link = hosts.link(name).await?;
    let both = async {
        let inventory = probe::probe(name, &link.ssh).await?;
        let storage = storage::read(&link.docker)
            .await
            .map_err(SurveyError::Storage)?;
        Ok::<_, SurveyError>((inventory, storage))
    };
    match tokio::time::timeout(hosts.timeout(), both).await {
        Ok(probed) => probed,
        Err(_) => Err(SurveyError::Timeout(hosts.timeout())),
    }
}
