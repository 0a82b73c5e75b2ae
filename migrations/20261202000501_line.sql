-- The waiting line. A request that does not fit waits as a `pending` vessel
-- with a place in its queue's line (`line_seq`, lower goes first), a
-- deadline (`wait_until`, then it ends `expired`), the place and reason last
-- told to its owner, and, once it has waited long at the head, a host held
-- for it so smaller requests stop overtaking it.
--
-- Placement needs each host's free GPUs, cores and memory per call; they
-- were aggregated from the claim tables on every placement (13 ms at a
-- thousand hosts). Now each host carries counters kept by triggers in the
-- same transaction as the claims, so choosing a host reads one row per host.
-- The claim tables' keys and the memory trigger stay the guarantee; the
-- counters only pick.
--
-- Everything that can let a waiting request in notifies `vessel_line` with
-- the queue's name: a reservation freed, a host that changed what it
-- offers or arrived, a request leaving the line unplaced. Every replica's
-- line worker listens and runs a placement pass for that queue.

ALTER TABLE vessels DROP CONSTRAINT vessels_state_check;
ALTER TABLE vessels ADD CONSTRAINT vessels_state_check CHECK (state IN
    ('requested', 'pending', 'provisioning', 'running',
     'stopping', 'buried', 'failed', 'lost', 'expired'));

CREATE SEQUENCE vessel_line_seq;
ALTER TABLE vessels
    ADD COLUMN line_seq      bigint,
    ADD COLUMN queued_at     timestamptz,
    ADD COLUMN wait_until    timestamptz,
    ADD COLUMN line_position integer,
    ADD COLUMN held_host_id  bigint REFERENCES hosts (id) ON DELETE SET NULL;
CREATE INDEX vessels_line ON vessels (queue, line_seq) WHERE state = 'pending';

-- An admin's override of a queue's per-user limits for one person; a null
-- column falls back to the queue's.
CREATE TABLE user_limits (
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    queue        text NOT NULL,
    max_gpus     integer CHECK (max_gpus >= 0),
    max_vessels  integer CHECK (max_vessels >= 0),
    PRIMARY KEY (user_id, queue)
);

-- What a reservation holds, counted, so freeing it can give the counts back.
ALTER TABLE reservations
    ADD COLUMN gpus integer NOT NULL DEFAULT 0 CHECK (gpus >= 0),
    ADD COLUMN cpus integer NOT NULL DEFAULT 0 CHECK (cpus >= 0);
UPDATE reservations r SET
    gpus = (SELECT count(*) FROM gpu_claims c WHERE c.vessel_id = r.vessel_id),
    cpus = (SELECT count(*) FROM core_claims c WHERE c.vessel_id = r.vessel_id);

ALTER TABLE hosts
    ADD COLUMN gpu_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN used_gpus   integer NOT NULL DEFAULT 0,
    ADD COLUMN used_cores  integer NOT NULL DEFAULT 0,
    ADD COLUMN used_memory bigint  NOT NULL DEFAULT 0;
UPDATE hosts h SET
    gpu_count   = (SELECT count(*) FROM gpus g WHERE g.host_id = h.id),
    used_gpus   = (SELECT coalesce(sum(r.gpus), 0) FROM reservations r WHERE r.host_id = h.id),
    used_cores  = (SELECT coalesce(sum(r.cpus), 0) FROM reservations r WHERE r.host_id = h.id),
    used_memory = (SELECT coalesce(sum(r.memory_bytes), 0) FROM reservations r WHERE r.host_id = h.id);
CREATE INDEX hosts_queue ON hosts (queue);

CREATE FUNCTION hosts_count_gpus() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE hosts SET gpu_count = gpu_count + 1 WHERE id = NEW.host_id;
    ELSE
        UPDATE hosts SET gpu_count = gpu_count - 1 WHERE id = OLD.host_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER gpus_counted AFTER INSERT OR DELETE ON gpus
    FOR EACH ROW EXECUTE FUNCTION hosts_count_gpus();

CREATE FUNCTION hosts_count_reserved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE hosts SET used_gpus = used_gpus + NEW.gpus, used_cores = used_cores + NEW.cpus,
                         used_memory = used_memory + NEW.memory_bytes
         WHERE id = NEW.host_id;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE hosts SET used_gpus = used_gpus - OLD.gpus, used_cores = used_cores - OLD.cpus,
                         used_memory = used_memory - OLD.memory_bytes
         WHERE id = OLD.host_id;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('vessel_line', (SELECT queue FROM hosts WHERE id = OLD.host_id));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reservations_counted AFTER INSERT OR UPDATE OR DELETE ON reservations
    FOR EACH ROW EXECUTE FUNCTION hosts_count_reserved();

-- A host that arrived, came back, was undrained or changed size: its queue's
-- line may move. (Probes touch `probed_at` every few seconds; only a change
-- in what it offers notifies.)
CREATE FUNCTION hosts_notify_line() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vessel_line', NEW.queue);
    IF TG_OP = 'UPDATE' AND OLD.queue <> NEW.queue THEN
        PERFORM pg_notify('vessel_line', OLD.queue);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER hosts_arrived AFTER INSERT ON hosts
    FOR EACH ROW EXECUTE FUNCTION hosts_notify_line();
CREATE TRIGGER hosts_changed AFTER UPDATE ON hosts
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.online IS DISTINCT FROM NEW.online
          OR OLD.cores IS DISTINCT FROM NEW.cores OR OLD.memory_bytes IS DISTINCT FROM NEW.memory_bytes
          OR OLD.gpu_count IS DISTINCT FROM NEW.gpu_count OR OLD.queue IS DISTINCT FROM NEW.queue)
    EXECUTE FUNCTION hosts_notify_line();

-- A request that left the line without being placed (cancelled, expired)
-- or was moved in it: the places behind it change.
CREATE FUNCTION vessels_notify_line() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vessel_line', NEW.queue);
    RETURN NULL;
END $$;
CREATE TRIGGER vessels_left_line AFTER UPDATE OF state, line_seq ON vessels
    FOR EACH ROW
    WHEN (OLD.state = 'pending' AND (NEW.state IN ('buried', 'failed', 'expired')
                                     OR OLD.line_seq IS DISTINCT FROM NEW.line_seq))
    EXECUTE FUNCTION vessels_notify_line();
