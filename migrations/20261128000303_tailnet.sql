-- Vessels on tailscale-mode hosts: the key minted for each (its id only:
-- the secret goes into the container and nowhere else) and the device it
-- became, so kill and burial remove the device at once.
CREATE TABLE tailnet_devices (
    vessel_id   uuid PRIMARY KEY REFERENCES vessels (id),
    key_id      text,
    device_id   text,
    hostname    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz
);

-- With MagicDNS, the name SSH configs use instead of the address.
ALTER TABLE vessels ADD COLUMN dns_name text;

CREATE OR REPLACE VIEW vessel_view AS
SELECT v.id, v.name, v.owner_id, u.unix_name AS owner_unix, u.uid AS owner_uid,
       v.queue, v.image, v.gpus, v.cpus, v.memory_bytes, v.state, v.reason,
       h.name AS host_name, v.gpu_uuids, v.cores, host(v.address) AS address,
       v.host_public_key, v.jupyter_token, v.jupyter_port, v.created_at, v.updated_at,
       v.started_at, v.ended_at, v.expires_at, v.dns_name
FROM vessels v
JOIN users u ON u.id = v.owner_id
LEFT JOIN hosts h ON h.id = v.host_id;
