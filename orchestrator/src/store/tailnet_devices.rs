//! `tailnet_devices`: the auth key minted for each tailscale-mode vessel and
//! the device it became, so both are removed when the vessel ends.

use sqlx::PgPool;
use uuid::Uuid;

/// A vessel's key and device that are not removed yet.
#[derive(Debug, Clone)]
pub struct LiveDevice {
    pub key_id: Option<String>,
    pub device_id: Option<String>,
}

/// A fresh key for the vessel: an earlier attempt's device is forgotten.
pub async fn record_key(
    db: &PgPool,
    vessel_id: Uuid,
    key_id: &str,
    hostname: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO tailnet_devices (vessel_id, key_id, hostname) VALUES ($1, $2, $3)
                 ON CONFLICT (vessel_id) DO UPDATE SET key_id = excluded.key_id,
                   device_id = NULL, hostname = excluded.hostname, removed_at = NULL",
        vessel_id,
        key_id,
        hostname
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The key became this device.
pub async fn set_device(db: &PgPool, vessel_id: Uuid, device_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE tailnet_devices SET device_id = $2 WHERE vessel_id = $1",
        vessel_id,
        device_id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn live(db: &PgPool, vessel_id: Uuid) -> Result<Option<LiveDevice>, sqlx::Error> {
    sqlx::query_as!(
        LiveDevice,
        "SELECT key_id, device_id FROM tailnet_devices WHERE vessel_id = $1 AND removed_at IS NULL",
        vessel_id
    )
    .fetch_optional(db)
    .await
}

/// Device and key are gone from the tailnet.
pub async fn mark_removed(db: &PgPool, vessel_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE tailnet_devices SET removed_at = now() WHERE vessel_id = $1",
        vessel_id
    )
    .execute(db)
    .await?;
    Ok(())
}
