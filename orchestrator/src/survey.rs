//! The survey: probes every host in the inventory over SSH and records what
//! it found, or why it could not. Run at start-up and then periodically, so a
//! host that comes back takes vessels again.

use std::sync::Arc;

use futures::future::join_all;
use sqlx::PgPool;
use tracing::{info, warn};

use crate::hosts::{probe, HostPool};
use crate::store::hosts as host_store;

pub async fn survey(db: &PgPool, hosts: &Arc<HostPool>) {
    let names: Vec<String> = hosts.specs().map(|s| s.name.clone()).collect();
    join_all(names.iter().map(|name| survey_one(db, hosts, name))).await;
    if let Err(e) = host_store::retire_missing(db, &names).await {
        warn!(error = %e, "cannot retire hosts that left the inventory");
    }
}

async fn survey_one(db: &PgPool, hosts: &Arc<HostPool>, name: &str) {
    let Some(spec) = hosts.spec(name) else { return };
    // A host that vanished leaves a half-open connection that never
    // answers: the probe has a deadline of its own.
    let result = match hosts.link(name).await {
        Ok(link) => {
            match tokio::time::timeout(hosts.timeout(), probe::probe(name, &link.ssh)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {:?}", hosts.timeout())),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    crate::metrics::host_probed(result.is_ok());
    let recorded = match result {
        Ok(inventory) => {
            info!(
                host = name,
                cores = inventory.cores.len(),
                gpus = inventory.gpus.len(),
                memory = inventory.memory_bytes,
                "host probed"
            );
            host_store::register(db, spec, &inventory).await.map(|_| ())
        }
        Err(reason) => {
            hosts.forget(name);
            warn!(host = name, %reason, "host probe failed");
            host_store::mark_offline(db, name, &spec.queue, &reason).await
        }
    };
    if let Err(e) = recorded {
        warn!(host = name, error = %e, "cannot record the probe");
    }
}
