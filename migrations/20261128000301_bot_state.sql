-- What the bot must remember across restarts lives here, so the bot keeps no
-- state of its own: its outbox cursor and which Slack message shows which
-- vessel (so state changes update that message).
CREATE TABLE bot_state (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
