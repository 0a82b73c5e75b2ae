-- The undertaker's bookkeeping per running vessel: idle work-time so far,
-- the last sweep that counted, warnings given, and Keep exemptions.
CREATE TABLE vessel_idle (
    vessel_id         uuid PRIMARY KEY REFERENCES vessels (id),
    idle_secs         double precision NOT NULL DEFAULT 0,
    last_sweep_at     timestamptz,
    warned_at         timestamptz,
    keep_until        timestamptz,
    expiry_warned_at  timestamptz
);

-- A host incident (unreachable) is announced once, when it opens, and once
-- when it closes.
ALTER TABLE hosts ADD COLUMN incident_since timestamptz;
