-- The GPU watchdog's incidents: a host whose DCGM series stopped arriving
-- in Prometheus, from the tick that saw it stale until the tick that sees
-- it fresh again. At most one open incident per host (the index), so a
-- second replica or a restart never opens (and announces) it twice: the
-- messages are written in the transaction that inserts the row.
CREATE TABLE gpu_incidents (
    id          bigserial PRIMARY KEY,
    host        text NOT NULL,
    opened_at   timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz,
    -- The GPUs whose series were stale when it opened.
    stale_gpus  text[] NOT NULL,
    -- What the immediate probe found, as told.
    finding     text NOT NULL,
    -- Messages queued for it (owners plus the admins).
    messages    integer NOT NULL
);
CREATE UNIQUE INDEX gpu_incidents_one_open ON gpu_incidents (host) WHERE closed_at IS NULL;

-- Periodic jobs run once per tick across replicas: the replica that
-- inserts a tick's row runs it; the others skip. Old rows are pruned.
CREATE TABLE job_ticks (
    job       text NOT NULL,
    tick      timestamptz NOT NULL,
    instance  text NOT NULL,
    ran_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, tick)
);
