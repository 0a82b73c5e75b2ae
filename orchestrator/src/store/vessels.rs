//! Vessel rows and their state machine. A transition is conditional on the
//! state it leaves (so two actors cannot both move a vessel) and writes its
//! event in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use vessel_api::events::{EventKind, EventPayload, VesselEvent};

use crate::domain::{QueueName, VesselName, VesselState};

/// A vessel as the database holds it, decoded into types: a state or queue
/// the code does not know is an error naming the row, never a guess.
#[derive(Debug, Clone, Serialize)]
pub struct VesselRow {
    pub id: Uuid,
    pub name: String,
    pub owner_id: String,
    pub owner_unix: String,
    pub owner_uid: i32,
    pub queue: QueueName,
    pub image: String,
    pub gpus: i32,
    pub cpus: i32,
    pub memory_bytes: i64,
    pub state: VesselState,
    pub reason: Option<String>,
    pub host_name: Option<String>,
    pub gpu_uuids: Vec<String>,
    pub cores: Vec<i32>,
    pub address: Option<String>,
    pub host_public_key: Option<String>,
    #[serde(skip)]
    pub jupyter_token: Option<String>,
    pub jupyter_port: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub dns_name: Option<String>,
    /// When it went to sleep, while it sleeps or wakes.
    pub hibernated_at: Option<DateTime<Utc>>,
    /// The host its kept container is on, while it sleeps or wakes.
    pub disk_host: Option<String>,
}

/// The row as `vessel_view` returns it, before its strings are parsed.
struct RawVessel {
    id: Uuid,
    name: String,
    owner_id: String,
    owner_unix: String,
    owner_uid: i32,
    queue: String,
    image: String,
    gpus: i32,
    cpus: i32,
    memory_bytes: i64,
    state: String,
    reason: Option<String>,
    host_name: Option<String>,
    gpu_uuids: Vec<String>,
    cores: Vec<i32>,
    address: Option<String>,
    host_public_key: Option<String>,
    jupyter_token: Option<String>,
    jupyter_port: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    dns_name: Option<String>,
    hibernated_at: Option<DateTime<Utc>>,
    disk_host_name: Option<String>,
}

impl TryFrom<RawVessel> for VesselRow {
    type Error = sqlx::Error;

    fn try_from(r: RawVessel) -> Result<VesselRow, sqlx::Error> {
        let bad = |what: &str, value: &str| {
            sqlx::Error::Decode(
                format!("vessel {}: {what} `{value}` is not one we know", r.id).into(),
            )
        };
        let state = VesselState::parse(&r.state).ok_or_else(|| bad("state", &r.state))?;
        let queue = QueueName::parse(&r.queue).map_err(|_| bad("queue", &r.queue))?;
        Ok(VesselRow {
            id: r.id,
            name: r.name,
            owner_id: r.owner_id,
            owner_unix: r.owner_unix,
            owner_uid: r.owner_uid,
            queue,
            image: r.image,
            gpus: r.gpus,
            cpus: r.cpus,
            memory_bytes: r.memory_bytes,
            state,
            reason: r.reason,
            host_name: r.host_name,
            gpu_uuids: r.gpu_uuids,
            cores: r.cores,
            address: r.address,
            host_public_key: r.host_public_key,
            jupyter_token: r.jupyter_token,
            jupyter_port: r.jupyter_port,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            expires_at: r.expires_at,
            dns_name: r.dns_name,
            hibernated_at: r.hibernated_at,
            disk_host: r.disk_host_name,
        })
    }
}

impl VesselRow {
    pub fn state(&self) -> VesselState {
        self.state
    }

    /// The outbox payload that announces this vessel's news: who to tell and
    /// what about; never its secrets.
    pub fn event(&self, message: Option<String>) -> EventPayload {
        EventPayload::Vessel(VesselEvent {
            id: self.id,
            // Names are parsed before they are stored.
            name: VesselName::parse(&self.name)
                .unwrap_or_else(|_| VesselName::parse("unnamed").expect("a valid name")),
            owner_id: self.owner_id.clone(),
            state: self.state(),
            reason: self.reason.clone(),
            message,
        })
    }
}

pub struct NewVessel<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub owner_id: &'a str,
    pub queue: &'a str,
    pub image: &'a str,
    pub gpus: i32,
    pub cpus: i32,
    pub memory_bytes: i64,
    pub expires_at: DateTime<Utc>,
    pub jupyter_token: &'a str,
}

pub async fn insert(conn: &mut PgConnection, v: &NewVessel<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO vessels (id, name, owner_id, queue, image, gpus, cpus, memory_bytes,
                              state, expires_at, jupyter_token)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'requested', $9, $10)",
        v.id,
        v.name,
        v.owner_id,
        v.queue,
        v.image,
        v.gpus,
        v.cpus,
        v.memory_bytes,
        v.expires_at,
        v.jupyter_token
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<VesselRow>, sqlx::Error> {
    sqlx::query_as!(
        RawVessel,
        r#"SELECT id AS "id!", name AS "name!", owner_id AS "owner_id!",
                  owner_unix AS "owner_unix!", owner_uid AS "owner_uid!", queue AS "queue!",
                  image AS "image!", gpus AS "gpus!", cpus AS "cpus!",
                  memory_bytes AS "memory_bytes!", state AS "state!", reason, host_name,
                  gpu_uuids AS "gpu_uuids!", cores AS "cores!", address, host_public_key,
                  jupyter_token, jupyter_port, created_at AS "created_at!", updated_at AS "updated_at!",
                  started_at, ended_at, expires_at AS "expires_at!", dns_name,
                  hibernated_at, disk_host_name
           FROM vessel_view WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?
    .map(VesselRow::try_from)
    .transpose()
}

/// A user's vessel by name: the live one if there is one, else the newest.
pub async fn by_owner_and_name(
    db: &PgPool,
    owner_id: &str,
    name: &str,
) -> Result<Option<VesselRow>, sqlx::Error> {
    sqlx::query_as!(
        RawVessel,
        r#"SELECT id AS "id!", name AS "name!", owner_id AS "owner_id!",
                  owner_unix AS "owner_unix!", owner_uid AS "owner_uid!", queue AS "queue!",
                  image AS "image!", gpus AS "gpus!", cpus AS "cpus!",
                  memory_bytes AS "memory_bytes!", state AS "state!", reason, host_name,
                  gpu_uuids AS "gpu_uuids!", cores AS "cores!", address, host_public_key,
                  jupyter_token, jupyter_port, created_at AS "created_at!", updated_at AS "updated_at!",
                  started_at, ended_at, expires_at AS "expires_at!", dns_name,
                  hibernated_at, disk_host_name
           FROM vessel_view WHERE owner_id = $1 AND name = $2
           ORDER BY (state IN ('requested','pending','provisioning','running','stopping','hibernating','hibernated')) DESC,
                    created_at DESC
           LIMIT 1"#,
        owner_id,
        name
    )
    .fetch_optional(db)
    .await?
    .map(VesselRow::try_from)
    .transpose()
}

/// Vessels of one owner (or all when `owner` is None), live first, newest first.
pub async fn list(
    db: &PgPool,
    owner: Option<&str>,
    include_ended: bool,
) -> Result<Vec<VesselRow>, sqlx::Error> {
    sqlx::query_as!(
        RawVessel,
        r#"SELECT id AS "id!", name AS "name!", owner_id AS "owner_id!",
                  owner_unix AS "owner_unix!", owner_uid AS "owner_uid!", queue AS "queue!",
                  image AS "image!", gpus AS "gpus!", cpus AS "cpus!",
                  memory_bytes AS "memory_bytes!", state AS "state!", reason, host_name,
                  gpu_uuids AS "gpu_uuids!", cores AS "cores!", address, host_public_key,
                  jupyter_token, jupyter_port, created_at AS "created_at!", updated_at AS "updated_at!",
                  started_at, ended_at, expires_at AS "expires_at!", dns_name,
                  hibernated_at, disk_host_name
           FROM vessel_view
           WHERE ($1::text IS NULL OR owner_id = $1)
             AND ($2 OR state IN ('requested','pending','provisioning','running','stopping','hibernating','hibernated'))
           ORDER BY (state IN ('requested','pending','provisioning','running','stopping','hibernating','hibernated')) DESC,
                    created_at DESC
           LIMIT 500"#,
        owner,
        include_ended
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(VesselRow::try_from)
    .collect()
}

/// Moves a vessel from one of `from` to `to`, recording `reason` and the
/// event. Returns the vessel as it is now, or None when it was not in `from`.
pub async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    from: &[VesselState],
    to: VesselState,
    reason: Option<&str>,
) -> Result<Option<VesselRow>, sqlx::Error> {
    transition_as_read(conn, id, from, to, reason, None).await
}

/// [`transition`], and only if the row is still the version read: its
/// `updated_at` is `read` (every write to a vessel row sets it). For an
/// actor that decides from rows read earlier (the reconciler): a change
/// that landed between its read and its act wins, and the act is decided
/// again from fresh rows next time.
pub async fn transition_as_read(
    conn: &mut PgConnection,
    id: Uuid,
    from: &[VesselState],
    to: VesselState,
    reason: Option<&str>,
    read: Option<DateTime<Utc>>,
) -> Result<Option<VesselRow>, sqlx::Error> {
    let from: Vec<String> = from.iter().map(|s| s.as_str().to_string()).collect();
    let moved = sqlx::query_scalar!(
        "UPDATE vessels SET state = $2, reason = coalesce($3, reason), updated_at = now(),
           started_at = CASE WHEN $2 = 'running' THEN now() ELSE started_at END,
           ended_at = CASE WHEN $2 IN ('buried', 'failed', 'lost') THEN now() ELSE ended_at END
         WHERE id = $1 AND state = ANY($4) AND ($5::timestamptz IS NULL OR updated_at = $5)
         RETURNING id",
        id,
        to.as_str(),
        reason,
        &from,
        read
    )
    .fetch_optional(&mut *conn)
    .await?;
    if moved.is_none() {
        return Ok(None);
    }
    let row = get(&mut *conn, id).await?;
    if let Some(row) = &row {
        super::events::emit(
            &mut *conn,
            Some(id),
            &EventKind::Vessel(to),
            &row.event(None),
        )
        .await?;
    }
    Ok(row)
}

/// Frees a `lost` vessel's devices, only if its row is still the version
/// read (`updated_at` = `read`): a vessel that came back meanwhile keeps
/// them.
pub async fn free_lost_reservation_as_read(
    conn: &mut PgConnection,
    id: Uuid,
    read: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "DELETE FROM reservations r USING vessels v
             WHERE r.vessel_id = $1 AND v.id = r.vessel_id
               AND v.state = 'lost' AND v.updated_at = $2",
        id,
        read
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Gives the devices back (how many reservations that was: 0 or 1). The
/// vessel row keeps what it had, for history.
pub async fn free_reservation(conn: &mut PgConnection, id: Uuid) -> Result<u64, sqlx::Error> {
    // A sleeping vessel's kept address goes with it.
    sqlx::query!("DELETE FROM address_holds WHERE vessel_id = $1", id)
        .execute(&mut *conn)
        .await?;
    Ok(
        sqlx::query!("DELETE FROM reservations WHERE vessel_id = $1", id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Puts a `hibernating` vessel to sleep once its container is stopped: its
/// reservation goes (the claims with it, and the line is told by the
/// counters' trigger), its address is held for it, and the host its disk
/// is on is recorded. False when it is no longer hibernating.
pub async fn put_to_sleep(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query!(
        "UPDATE vessels SET hibernated_at = now(), disk_host_id = host_id
         WHERE id = $1 AND state = 'hibernating'",
        id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if marked == 0 {
        return Ok(false);
    }
    sqlx::query!(
        "WITH r AS (DELETE FROM reservations WHERE vessel_id = $1 RETURNING host_id, address)
         INSERT INTO address_holds (vessel_id, host_id, address)
         SELECT $1, host_id, address FROM r WHERE address IS NOT NULL
         ON CONFLICT (vessel_id) DO NOTHING",
        id
    )
    .execute(conn)
    .await?;
    Ok(true)
}

/// A woken vessel runs again: no longer asleep. How long it slept, in
/// seconds (on the database's clock).
pub async fn woke(conn: &mut PgConnection, id: Uuid) -> Result<Option<f64>, sqlx::Error> {
    let slept = sqlx::query_scalar!(
        r#"WITH before AS (SELECT hibernated_at FROM vessels WHERE id = $1)
           UPDATE vessels SET hibernated_at = NULL, disk_host_id = NULL, wake_anywhere = false
           WHERE id = $1
           RETURNING (SELECT extract(epoch FROM now() - hibernated_at)::float8 FROM before)"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    // A moved vessel's address on its old host goes with the old container.
    sqlx::query!("DELETE FROM address_holds WHERE vessel_id = $1", id)
        .execute(conn)
        .await?;
    Ok(slept.flatten())
}

/// A wake that failed: the reservation goes again, the address on the
/// disk's host is held again, and the vessel sleeps there as before (a
/// move that failed is back on its old host, with its old address).
pub async fn back_to_sleep(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH r AS (DELETE FROM reservations WHERE vessel_id = $1 RETURNING host_id, address)
         INSERT INTO address_holds (vessel_id, host_id, address)
         SELECT $1, r.host_id, r.address FROM r JOIN vessels v ON v.id = $1
         WHERE r.address IS NOT NULL AND r.host_id = v.disk_host_id
         ON CONFLICT (vessel_id) DO NOTHING",
        id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE vessels v SET host_id = v.disk_host_id, wake_anywhere = false,
                address = coalesce((SELECT a.address FROM address_holds a WHERE a.vessel_id = v.id),
                                   v.address)
         WHERE v.id = $1",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a wake may go to another host when its own is full.
pub async fn set_wake_anywhere(
    conn: &mut PgConnection,
    id: Uuid,
    anywhere: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE vessels SET wake_anywhere = $2 WHERE id = $1",
        id,
        anywhere
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What the user needs to reach the vessel, known once its container is made.
pub async fn set_access(
    db: &PgPool,
    id: Uuid,
    host_public_key: &str,
    jupyter_port: Option<i32>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE vessels SET host_public_key = $2, jupyter_port = $3, updated_at = now()
         WHERE id = $1",
        id,
        host_public_key,
        jupyter_port
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_expiry(
    conn: &mut PgConnection,
    id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE vessels SET expires_at = $2, updated_at = now() WHERE id = $1",
        id,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The tailnet address (and MagicDNS name) a vessel's device got.
pub async fn set_tailnet_address(
    db: &PgPool,
    id: Uuid,
    address: &str,
    dns_name: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE vessels SET address = $2::text::inet, dns_name = $3, updated_at = now() WHERE id = $1",
        id,
        address,
        dns_name
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Ended vessels never hold anything: frees what they still hold.
pub async fn free_ended_reservations(db: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "DELETE FROM reservations r USING vessels v
             WHERE r.vessel_id = v.id AND v.state IN ('buried', 'failed')"
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// A vessel on a host that may have a container there, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveVessel {
    pub id: Uuid,
    pub state: VesselState,
    /// The row's version: acts decided from this read name it.
    pub updated_at: DateTime<Utc>,
}

/// The vessels on `host` that may have a container there, and their states.
pub async fn live_on_host(db: &PgPool, host: &str) -> Result<Vec<LiveVessel>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT v.id, v.state, v.updated_at FROM vessels v JOIN hosts h ON h.id = v.host_id
             WHERE h.name = $1 AND (v.state IN ('provisioning', 'running', 'stopping', 'lost',
                                                 'hibernating', 'hibernated')
                                    OR (v.state = 'pending' AND v.disk_host_id IS NOT NULL))",
        host
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(LiveVessel {
                id: r.id,
                state: VesselState::parse(&r.state)?,
                updated_at: r.updated_at,
            })
        })
        .collect())
}

/// The running vessels on `host`.
pub async fn running_on_host(
    conn: &mut PgConnection,
    host: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT v.id FROM vessels v JOIN hosts h ON h.id = v.host_id
             WHERE h.name = $1 AND v.state = 'running'",
        host
    )
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(state: &str, queue: &str) -> RawVessel {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        RawVessel {
            id: Uuid::nil(),
            name: "v".into(),
            owner_id: "o".into(),
            owner_unix: "o".into(),
            owner_uid: 1000,
            queue: queue.into(),
            image: "i".into(),
            gpus: 0,
            cpus: 1,
            memory_bytes: 1,
            state: state.into(),
            reason: None,
            host_name: None,
            gpu_uuids: Vec::new(),
            cores: Vec::new(),
            address: None,
            host_public_key: None,
            jupyter_token: None,
            jupyter_port: None,
            created_at: t,
            updated_at: t,
            started_at: None,
            ended_at: None,
            expires_at: t,
            dns_name: None,
            hibernated_at: None,
            disk_host_name: None,
        }
    }

    #[test]
    fn a_row_decodes_into_types_and_an_unknown_state_names_the_row() {
        let row = VesselRow::try_from(raw("running", "3090")).expect("a known row");
        assert_eq!(row.state, VesselState::Running);
        assert_eq!(row.queue.as_str(), "3090");
        for (state, queue, what) in [
            ("sleeping", "3090", "state `sleeping`"),
            ("running", "", "queue ``"),
        ] {
            let err = VesselRow::try_from(raw(state, queue))
                .expect_err("unknown")
                .to_string();
            assert!(
                err.contains(&Uuid::nil().to_string()) && err.contains(what),
                "{err}"
            );
        }
    }
}
