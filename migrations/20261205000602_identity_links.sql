-- Identities are keyed by issuer and subject (security round three, item
-- 10). An OIDC identity is the person `SUB@NAME` unless a row here links it
-- to a person (a Slack user, say): only an admin writes one, and each
-- identity is linked to at most one person.
CREATE TABLE identity_links (
    -- The issuer's `name` in config (not its URL: names are what admins type).
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    text NOT NULL REFERENCES users (id),
    linked_by  text NOT NULL,
    linked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identity_links_user ON identity_links (user_id);
