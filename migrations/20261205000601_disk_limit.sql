-- A vessel's writable layer (security round three, item 4): what each
-- host's storage driver can limit, and what the undertaker measured of each
-- vessel where it cannot.
ALTER TABLE hosts
    ADD COLUMN storage_driver text,
    -- The last survey found a driver that honours a container's size.
    ADD COLUMN disk_quota boolean NOT NULL DEFAULT false;

ALTER TABLE vessel_idle
    ADD COLUMN disk_used_bytes bigint,
    ADD COLUMN disk_read_at timestamptz,
    -- Over the queue's limit at this sweep; stopped if still over at a later one.
    ADD COLUMN disk_warned_at timestamptz;
