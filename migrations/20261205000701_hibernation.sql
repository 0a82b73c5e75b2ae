-- Hibernation (issue 21): a vessel's container stopped and kept, its GPUs,
-- cores and memory given back; waking puts it back in line for the host
-- its disk is on.
ALTER TABLE vessels DROP CONSTRAINT vessels_state_check;
ALTER TABLE vessels ADD CONSTRAINT vessels_state_check CHECK (state IN
    ('requested', 'pending', 'provisioning', 'running', 'stopping', 'buried',
     'failed', 'lost', 'expired', 'hibernating', 'hibernated'));

ALTER TABLE vessels
    -- When it last went to sleep; cleared when it runs again.
    ADD COLUMN hibernated_at timestamptz,
    -- The host its stopped container (its disk) is on, while it sleeps or
    -- wakes: a wake is placed there only.
    ADD COLUMN disk_host_id bigint REFERENCES hosts (id);

-- A sleeping vessel keeps its name.
DROP INDEX vessels_live_name;
CREATE UNIQUE INDEX vessels_live_name ON vessels (owner_id, name)
    WHERE state IN ('requested', 'pending', 'provisioning', 'running', 'stopping',
                    'hibernating', 'hibernated');

-- A direct-mode address outlives the reservation of a sleeping vessel, so
-- its SSH config and known_hosts line stay valid; placement hands it back
-- at the wake and never gives it to another vessel meanwhile.
CREATE TABLE address_holds (
    vessel_id  uuid PRIMARY KEY REFERENCES vessels (id),
    host_id    bigint NOT NULL REFERENCES hosts (id),
    address    inet NOT NULL,
    UNIQUE (host_id, address)
);

CREATE OR REPLACE VIEW vessel_view AS
SELECT v.id, v.name, v.owner_id, u.unix_name AS owner_unix, u.uid AS owner_uid,
       v.queue, v.image, v.gpus, v.cpus, v.memory_bytes, v.state, v.reason,
       h.name AS host_name, v.gpu_uuids, v.cores, host(v.address) AS address,
       v.host_public_key, v.jupyter_token, v.jupyter_port, v.created_at, v.updated_at,
       v.started_at, v.ended_at, v.expires_at, v.dns_name,
       v.hibernated_at, dh.name AS disk_host_name
FROM vessels v
JOIN users u ON u.id = v.owner_id
LEFT JOIN hosts h ON h.id = v.host_id
LEFT JOIN hosts dh ON dh.id = v.disk_host_id;
