-- The undertaker's ledger of a sleeping vessel: its burial warning (a day
-- before `bury_hibernated_after` runs out).
ALTER TABLE vessel_idle ADD COLUMN burial_warned_at timestamptz;
