-- A unix name or uid, once given to a subject, stays that subject's (issue
-- 10, item 5): a newcomer given a renamed or departed user's name would be
-- handed their home by the init, and one given their old uid would own their
-- files on every shared disk. Every name and uid ever held is recorded here
-- by a trigger on `users`, so no code path (first sight, a token's claim, an
-- admin's PUT) can hand one to a second subject.
CREATE TABLE unix_names_given (
    unix_name  text PRIMARY KEY,
    subject    text NOT NULL,
    given_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE uids_given (
    uid       integer PRIMARY KEY,
    subject   text NOT NULL,
    given_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO unix_names_given (unix_name, subject) SELECT unix_name, id FROM users;
INSERT INTO uids_given (uid, subject) SELECT uid, id FROM users;

-- Raises unique_violation, as the users table's own UNIQUE constraints do,
-- so callers treat "was someone else's" exactly like "is someone else's".
-- Each statement of a volatile plpgsql function takes a fresh snapshot, so a
-- concurrent claim that committed first is seen.
CREATE FUNCTION users_identity_never_reused() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    holder text;
BEGIN
    INSERT INTO unix_names_given (unix_name, subject) VALUES (NEW.unix_name, NEW.id)
        ON CONFLICT (unix_name) DO NOTHING;
    SELECT subject INTO holder FROM unix_names_given WHERE unix_name = NEW.unix_name;
    IF holder IS DISTINCT FROM NEW.id THEN
        RAISE EXCEPTION 'the unix name % was given to another subject before', NEW.unix_name
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'unix_names_given_pkey';
    END IF;
    INSERT INTO uids_given (uid, subject) VALUES (NEW.uid, NEW.id)
        ON CONFLICT (uid) DO NOTHING;
    SELECT subject INTO holder FROM uids_given WHERE uid = NEW.uid;
    IF holder IS DISTINCT FROM NEW.id THEN
        RAISE EXCEPTION 'the uid % was given to another subject before', NEW.uid
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'uids_given_pkey';
    END IF;
    RETURN NULL;
END $$;

-- AFTER: only rows really written count (`ON CONFLICT (id) DO NOTHING`
-- writes none).
CREATE TRIGGER users_identity_never_reused
    AFTER INSERT OR UPDATE OF unix_name, uid ON users
    FOR EACH ROW EXECUTE FUNCTION users_identity_never_reused();
