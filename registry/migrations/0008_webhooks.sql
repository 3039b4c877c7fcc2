-- Webhook endpoints (one organization's), the delivery log, and the one-off
-- redeliveries asked for. Events are not copied anywhere: an endpoint's
-- `cursor` is the sequence number of the last event of its organization's
-- audit chain it is done with (delivered, not subscribed, or given up after
-- the retry schedule); the chain itself is the outbox. `attempt` and
-- `next_attempt_at` are the retry state of the event after the cursor.
-- `lease_owner`/`lease_until` let one replica at a time deliver to an
-- endpoint. The signing secrets are stored as plugin secrets are (the
-- `secrets` table, encrypted under the secrets key), under the plugin name
-- `~webhook/<id>`, which no plugin name can be.

CREATE TABLE webhooks (
    org TEXT NOT NULL,
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    disabled_reason TEXT,
    previous_secret_until BIGINT,
    cursor BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    failing_since BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org, id)
);

CREATE TABLE webhook_attempts (
    org TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    status BIGINT,
    duration_ms BIGINT NOT NULL,
    error TEXT,
    response TEXT,
    PRIMARY KEY (org, webhook_id, event_seq, attempt)
);

CREATE INDEX webhook_attempts_by_time ON webhook_attempts (org, webhook_id, at);

CREATE TABLE webhook_redeliveries (
    org TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    requested_at BIGINT NOT NULL,
    requested_by TEXT NOT NULL,
    PRIMARY KEY (org, webhook_id, event_seq)
)
