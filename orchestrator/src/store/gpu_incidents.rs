//! `gpu_incidents`: hosts whose DCGM series went stale, one open incident
//! per host (a partial unique index), and what the watchdog reads to
//! decide and to tell: the GPUs it watches and the vessels on a host.

use sqlx::{PgConnection, PgPool};

use crate::domain::VesselState;

/// A GPU the database knows, and the host it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedGpu {
    pub host: String,
    pub uuid: String,
}

/// Every registered GPU with its host: what DCGM series are mapped to.
pub async fn watched_gpus(db: &PgPool) -> Result<Vec<WatchedGpu>, sqlx::Error> {
    sqlx::query_as!(
        WatchedGpu,
        "SELECT h.name AS host, g.uuid FROM gpus g JOIN hosts h ON h.id = g.host_id
         ORDER BY h.name, g.idx"
    )
    .fetch_all(db)
    .await
}

/// Hosts with an open incident.
pub async fn open_hosts(db: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT host FROM gpu_incidents WHERE closed_at IS NULL ORDER BY host")
        .fetch_all(db)
        .await
}

/// Opens `host`'s incident; None when one is open already (another
/// replica's, or this one's before a restart): then nothing is announced.
pub async fn open(
    conn: &mut PgConnection,
    host: &str,
    stale_gpus: &[String],
    finding: &str,
    messages: i32,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO gpu_incidents (host, stale_gpus, finding, messages)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (host) WHERE closed_at IS NULL DO NOTHING
         RETURNING id",
        host,
        stale_gpus,
        finding,
        messages
    )
    .fetch_optional(conn)
    .await
}

/// Closes `host`'s open incident; true when there was one.
pub async fn close(db: &PgPool, host: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE gpu_incidents SET closed_at = now() WHERE host = $1 AND closed_at IS NULL",
        host
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A live vessel on a host, as its owner is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedVessel {
    pub name: String,
    /// The owner's subject (a Slack user id for Slack users).
    pub owner_id: String,
    pub state: String,
}

impl HostedVessel {
    /// The state as the contract names it (a row always holds a valid one;
    /// an unknown spelling reads as failed, as `VesselRow::state` does).
    pub fn state(&self) -> VesselState {
        VesselState::parse(&self.state).unwrap_or(VesselState::Failed)
    }
}

/// The vessels on `host` that its owners still care about: running, or
/// marked lost (by this incident's probe, say).
pub async fn vessels_on_host(
    conn: &mut PgConnection,
    host: &str,
) -> Result<Vec<HostedVessel>, sqlx::Error> {
    sqlx::query_as!(
        HostedVessel,
        "SELECT v.name, v.owner_id, v.state
           FROM vessels v JOIN hosts h ON h.id = v.host_id
          WHERE h.name = $1 AND v.state IN ('provisioning', 'running', 'lost')
          ORDER BY v.owner_id, v.name",
        host
    )
    .fetch_all(conn)
    .await
}
