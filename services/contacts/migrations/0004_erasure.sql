-- The right to erasure. An erasure deletes the person's row; what must
-- outlive it holds no personal data:
--   erasure_requests      who asked, why and when (the audit of the request);
--   erasure_confirmations each service that erased its copy, and when;
--   erased_addresses      HMAC-SHA256 (privacy.suppression_key) of each
--                         erased address, lower-cased: imports consult it
--                         so that an erased address is never created or
--                         subscribed again, without the address being kept.
-- The consent ledger keeps the person's statements (state, time, source),
-- their evidence emptied, and ends with a withdrawal whose source is the
-- erasure.
CREATE TABLE erasure_requests (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    person_id uuid NOT NULL,
    requested_by text NOT NULL,
    reason text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erasure_requests_person ON erasure_requests (tenant_id, person_id);

CREATE TABLE erasure_confirmations (
    erasure_id uuid NOT NULL REFERENCES erasure_requests (id),
    service text NOT NULL,
    confirmed_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (erasure_id, service)
);

CREATE TABLE erased_addresses (
    tenant_id uuid NOT NULL,
    email_hash text NOT NULL,
    erasure_id uuid NOT NULL REFERENCES erasure_requests (id),
    erased_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email_hash)
);
