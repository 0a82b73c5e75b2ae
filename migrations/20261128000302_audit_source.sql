-- "From where" for every audit row: the client address of the request (and
-- what the bot says it relays, e.g. `slack`), or `system` for jobs.
ALTER TABLE audit_log ADD COLUMN source text NOT NULL DEFAULT 'system';
