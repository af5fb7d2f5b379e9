-- One row per person. Matching ignores the case of e-mail addresses
-- (email_key) but keeps the spelling given (email).
CREATE TABLE people (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    first_name text,
    last_name text,
    email text,
    email_key text,
    phone text,
    address_line1 text,
    postal_code text,
    city text,
    country text,
    departement text,
    birth_date date,
    tags text[] NOT NULL DEFAULT '{}',
    external_ids jsonb NOT NULL DEFAULT '{}',
    email_consent text NOT NULL DEFAULT 'none'
        CHECK (email_consent IN ('none', 'granted', 'withdrawn')),
    email_consent_at timestamptz,
    email_consent_source text,
    email_consent_evidence jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX people_email_key ON people (tenant_id, email_key);
-- People known only by a phone number are matched on it.
CREATE UNIQUE INDEX people_phone_without_email ON people (tenant_id, phone)
    WHERE email_key IS NULL;
CREATE INDEX people_tenant_id ON people (tenant_id, id);
CREATE INDEX people_tags ON people USING gin (tags);

-- Every consent statement ever recorded, append-only; people.email_consent
-- is the state derived from it.
CREATE TABLE consent_events (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL,
    person_id uuid NOT NULL,
    channel text NOT NULL,
    state text NOT NULL CHECK (state IN ('granted', 'withdrawn')),
    occurred_at timestamptz NOT NULL,
    source text NOT NULL,
    evidence jsonb NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_events_person ON consent_events (tenant_id, person_id, id);

CREATE TABLE imports (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    file_name text NOT NULL,
    preset text NOT NULL,
    mapping jsonb,
    source_label text NOT NULL,
    state text NOT NULL CHECK (state IN ('receiving', 'queued', 'running', 'succeeded', 'failed')),
    size_bytes bigint NOT NULL DEFAULT 0,
    bytes_read bigint NOT NULL DEFAULT 0,
    rows_read bigint NOT NULL DEFAULT 0,
    rows_empty bigint NOT NULL DEFAULT 0,
    created bigint NOT NULL DEFAULT 0,
    merged bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0,
    warnings bigint NOT NULL DEFAULT 0,
    consent_granted bigint NOT NULL DEFAULT 0,
    suppressed bigint NOT NULL DEFAULT 0,
    encoding text,
    delimiter text,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Moves with every batch; an import whose progress stopped was interrupted.
    progressed_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX imports_tenant ON imports (tenant_id, id);

CREATE TABLE import_issues (
    id bigserial PRIMARY KEY,
    import_id uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    line bigint NOT NULL,
    field text NOT NULL,
    value text NOT NULL,
    reason text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('warning', 'rejected'))
);
CREATE INDEX import_issues_import ON import_issues (import_id, id);
