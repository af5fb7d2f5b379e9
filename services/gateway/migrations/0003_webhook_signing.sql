-- The key Mailgun signs an organization's webhooks with (its account's HTTP
-- webhook signing key). Kept as given: checking a signature needs the key.
ALTER TABLE tenants
    ADD COLUMN mailgun_signing_key text CHECK (mailgun_signing_key <> '');

-- Tokens of signed webhooks already received, so that a captured request
-- cannot be posted again while its timestamp is still accepted.
CREATE TABLE webhook_tokens (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    provider text NOT NULL,
    token text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider, token)
);

CREATE INDEX webhook_tokens_received_at ON webhook_tokens (received_at);
