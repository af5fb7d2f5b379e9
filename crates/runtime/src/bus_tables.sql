-- Messages waiting for the relay to publish them, written in the same
-- transaction as the state change they announce.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    message_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    -- 'event' goes to the events exchange, 'queue' straight to a work queue.
    destination text NOT NULL CHECK (destination IN ('event', 'queue')),
    routing_key text NOT NULL,
    message_type text NOT NULL,
    body bytea NOT NULL,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Messages already applied by a consumer, so that a redelivery does nothing.
CREATE TABLE inbox (
    consumer text NOT NULL,
    message_id uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
