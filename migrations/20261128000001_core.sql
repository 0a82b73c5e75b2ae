-- The core schema: hosts and their devices, users and keys, vessels, the
-- reservations that hold devices for live vessels, the conductor's job queue,
-- the outbox of events, and the audit log.
--
-- Invariant 1 lives here, not only in code: a GPU or a core can be claimed by
-- one reservation at a time (primary keys on the claim tables), and the sum of
-- the memory reserved on a host never exceeds what the host has (a trigger that
-- serialises on the host row). Freeing a vessel's resources is deleting its
-- reservation; the vessel row stays for history with what it had.

CREATE TABLE hosts (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    queue         text NOT NULL,
    -- What the operator wants (drain stops new placements) ...
    state         text NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'draining')),
    -- ... and what the last probe saw.
    online        boolean NOT NULL DEFAULT false,
    cores         integer NOT NULL DEFAULT 0 CHECK (cores >= 0),
    memory_bytes  bigint NOT NULL DEFAULT 0 CHECK (memory_bytes >= 0),
    -- Direct network mode: the pool the orchestrator hands addresses out of.
    address_pool  cidr,
    gateway       inet,
    probed_at     timestamptz,
    probe_error   text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gpus (
    id          bigserial PRIMARY KEY,
    host_id     bigint NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    idx         integer NOT NULL,
    uuid        text NOT NULL UNIQUE,
    model       text NOT NULL,
    memory_mib  integer NOT NULL DEFAULT 0,
    pci_bus_id  text NOT NULL DEFAULT '',
    numa_node   integer NOT NULL DEFAULT 0,
    UNIQUE (host_id, idx)
);
CREATE INDEX gpus_host ON gpus (host_id);

CREATE TABLE host_cores (
    host_id    bigint NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    core       integer NOT NULL,
    numa_node  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (host_id, core)
);

CREATE TABLE users (
    id          text PRIMARY KEY,           -- the token's subject
    unix_name   text NOT NULL UNIQUE,
    uid         integer NOT NULL UNIQUE CHECK (uid >= 1000),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE user_uids START 20000;

CREATE TABLE ssh_keys (
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    fingerprint  text NOT NULL,
    public_key   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, fingerprint)
);

CREATE TABLE vessels (
    id               uuid PRIMARY KEY,
    name             text NOT NULL,
    owner_id         text NOT NULL REFERENCES users (id),
    queue            text NOT NULL,
    image            text NOT NULL,
    gpus             integer NOT NULL CHECK (gpus >= 0),
    cpus             integer NOT NULL CHECK (cpus >= 1),
    memory_bytes     bigint NOT NULL CHECK (memory_bytes > 0),
    state            text NOT NULL CHECK (state IN
                     ('requested', 'pending', 'provisioning', 'running',
                      'stopping', 'buried', 'failed', 'lost')),
    reason           text,
    -- What the vessel was given; kept after burial for history.
    host_id          bigint REFERENCES hosts (id),
    gpu_uuids        text[] NOT NULL DEFAULT '{}',
    cores            integer[] NOT NULL DEFAULT '{}',
    address          inet,
    host_public_key  text,
    jupyter_token    text,
    -- Set at provisioning when the image says it runs Jupyter.
    jupyter_port     integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz,
    expires_at       timestamptz NOT NULL
);
-- A name is unique among a user's live vessels; the dead keep theirs.
CREATE UNIQUE INDEX vessels_live_name ON vessels (owner_id, name)
    WHERE state IN ('requested', 'pending', 'provisioning', 'running', 'stopping');
CREATE INDEX vessels_owner ON vessels (owner_id, created_at DESC);
CREATE INDEX vessels_state ON vessels (state);

CREATE TABLE reservations (
    vessel_id     uuid PRIMARY KEY REFERENCES vessels (id),
    host_id       bigint NOT NULL REFERENCES hosts (id),
    memory_bytes  bigint NOT NULL CHECK (memory_bytes > 0),
    address       inet,
    UNIQUE (vessel_id, host_id),
    UNIQUE (host_id, address)
);
CREATE INDEX reservations_host ON reservations (host_id);

-- One live claim per GPU and per core: the primary keys are the guarantee.
CREATE TABLE gpu_claims (
    gpu_id     bigint PRIMARY KEY REFERENCES gpus (id),
    vessel_id  uuid NOT NULL REFERENCES reservations (vessel_id) ON DELETE CASCADE
);
CREATE INDEX gpu_claims_vessel ON gpu_claims (vessel_id);

CREATE TABLE core_claims (
    host_id    bigint NOT NULL,
    core       integer NOT NULL,
    vessel_id  uuid NOT NULL,
    PRIMARY KEY (host_id, core),
    FOREIGN KEY (host_id, core) REFERENCES host_cores (host_id, core),
    -- The core must be on the host the reservation is for.
    FOREIGN KEY (vessel_id, host_id) REFERENCES reservations (vessel_id, host_id) ON DELETE CASCADE
);
CREATE INDEX core_claims_vessel ON core_claims (vessel_id);

-- Memory is a quantity, not a set of devices: the sum per host is checked
-- after taking the host row's lock, so two concurrent reservations on one host
-- are serialised and the second sees the first (each statement in a volatile
-- plpgsql function takes a fresh snapshot under READ COMMITTED).
CREATE FUNCTION reservations_memory_fits() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    capacity bigint;
    reserved bigint;
BEGIN
    SELECT memory_bytes INTO capacity FROM hosts WHERE id = NEW.host_id FOR UPDATE;
    SELECT coalesce(sum(memory_bytes), 0) INTO reserved
      FROM reservations WHERE host_id = NEW.host_id;
    IF reserved > capacity THEN
        RAISE EXCEPTION 'memory of host % over-reserved: % of % bytes', NEW.host_id, reserved, capacity
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservations_memory_fits';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER reservations_memory_fits
    AFTER INSERT OR UPDATE OF memory_bytes, host_id ON reservations
    FOR EACH ROW EXECUTE FUNCTION reservations_memory_fits();

-- The conductor's queue: one row per vessel that needs work. The worker that
-- holds the lease reconciles the vessel towards its state; `generation` moves
-- whenever new work is asked for, so finishing an older generation does not
-- drop the newer request.
CREATE TABLE jobs (
    vessel_id    uuid PRIMARY KEY REFERENCES vessels (id),
    run_after    timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    generation   bigint NOT NULL DEFAULT 1,
    lease_until  timestamptz,
    leased_by    text,
    last_error   text
);
CREATE INDEX jobs_due ON jobs (run_after);

-- Transactional outbox: written in the same transaction as the state change.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    vessel_id   uuid REFERENCES vessels (id),
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL,
    target    text,
    outcome   text NOT NULL DEFAULT 'ok',
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor ON audit_log (actor, at DESC);

-- A vessel with its owner's unix identity and its host's name: what the API
-- shows and the conductor acts on.
CREATE VIEW vessel_view AS
SELECT v.id, v.name, v.owner_id, u.unix_name AS owner_unix, u.uid AS owner_uid,
       v.queue, v.image, v.gpus, v.cpus, v.memory_bytes, v.state, v.reason,
       h.name AS host_name, v.gpu_uuids, v.cores, host(v.address) AS address,
       v.host_public_key, v.jupyter_token, v.jupyter_port, v.created_at, v.updated_at,
       v.started_at, v.ended_at, v.expires_at
FROM vessels v
JOIN users u ON u.id = v.owner_id
LEFT JOIN hosts h ON h.id = v.host_id;
