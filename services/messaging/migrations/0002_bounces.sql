-- Bounces and complaints reported after a message was accepted: every
-- report is kept, one row per address it is about.
CREATE TABLE bounces (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    -- The delivery the report names by its Message-ID, when known.
    delivery_id uuid REFERENCES deliveries (id),
    campaign_id uuid,
    person_id uuid,
    email_key text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('permanent', 'transient', 'complaint')),
    -- Enhanced status code (5.1.1) or SMTP reply code (550); '' when not given.
    status text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    -- The report's format: dsn, arf, text, ses, mailgun.
    provider text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- The reporter's own id of the report (its Message-ID, SES feedback id,
    -- Mailgun event id), to find it there.
    report_id text NOT NULL DEFAULT '',
    -- The report as received, hashed: the same report posted again is one row.
    raw_sha256 text NOT NULL,
    UNIQUE (tenant_id, raw_sha256, email_key)
);
CREATE INDEX bounces_campaign ON bounces (campaign_id, delivery_id);
CREATE INDEX bounces_delivery ON bounces (delivery_id);
CREATE INDEX bounces_address ON bounces (tenant_id, email_key, received_at);
CREATE INDEX bounces_person ON bounces (tenant_id, person_id);
