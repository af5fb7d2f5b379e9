-- Sending rate limits, read by every sender every few seconds, so that a
-- change applies without a restart. A window whose limit is 0 is not limited.
-- Any window of one period (second, hour, day) holds at most limit + burst
-- messages. Provider limits are the operator's: they have no tenant.
CREATE TABLE rate_limits (
    scope text NOT NULL CHECK (scope IN ('tenant', 'sender', 'provider')),
    tenant_id uuid,
    -- '' for a tenant limit; the lowercased from address of a sender
    -- identity; the lowercased provider name (the SMTP relay host by default).
    key text NOT NULL,
    per_second integer NOT NULL CHECK (per_second >= 0),
    per_hour integer NOT NULL CHECK (per_hour >= 0),
    per_day integer NOT NULL CHECK (per_day >= 0),
    burst integer NOT NULL CHECK (burst >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'provider') = (tenant_id IS NULL)),
    CHECK ((scope = 'tenant') = (key = '')),
    UNIQUE NULLS NOT DISTINCT (tenant_id, scope, key)
);
