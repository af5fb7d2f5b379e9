CREATE TABLE templates (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    subject text NOT NULL,
    text_body text NOT NULL,
    html_body text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX templates_tenant ON templates (tenant_id, id);

CREATE TABLE campaigns (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    template_id uuid NOT NULL REFERENCES templates (id),
    -- muster.contacts.v1.SegmentFilter, protobuf-encoded.
    segment bytea NOT NULL,
    from_name text NOT NULL DEFAULT '',
    from_email text NOT NULL,
    reply_to text NOT NULL DEFAULT '',
    state text NOT NULL CHECK (state IN
        ('draft', 'launching', 'sending', 'paused', 'cancelled', 'completed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    launched_at timestamptz
);
CREATE INDEX campaigns_tenant ON campaigns (tenant_id, id);

-- One recipient of one campaign. A delivery moves queued → sending → sent |
-- failed | queued (retry); 'sending' is claimed: it is never sent again. A
-- claim left by a dead process becomes 'unknown' (maybe received).
CREATE TABLE deliveries (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    campaign_id uuid NOT NULL REFERENCES campaigns (id),
    person_id uuid NOT NULL,
    email text NOT NULL,
    first_name text NOT NULL DEFAULT '',
    last_name text NOT NULL DEFAULT '',
    city text NOT NULL DEFAULT '',
    state text NOT NULL DEFAULT 'queued' CHECK (state IN
        ('queued', 'sending', 'sent', 'failed', 'suppressed', 'cancelled', 'unknown')),
    attempts integer NOT NULL DEFAULT 0,
    claimed_at timestamptz,
    sent_at timestamptz,
    provider_message_id text,
    error text,
    UNIQUE (campaign_id, person_id)
);
CREATE INDEX deliveries_campaign_state ON deliveries (campaign_id, state);

-- Addresses never to send to: the projection of consent withdrawals
-- announced by contacts, and unsubscribes received here first.
CREATE TABLE suppressions (
    tenant_id uuid NOT NULL,
    email_key text NOT NULL,
    person_id uuid,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email_key)
);
