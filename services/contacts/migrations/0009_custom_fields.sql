-- Custom fields: the properties each organization defines on its people.
CREATE TABLE custom_fields (
    tenant_id uuid NOT NULL,
    key text NOT NULL,
    label text NOT NULL,
    type text NOT NULL CHECK (type IN ('text', 'number', 'date', 'boolean', 'choice')),
    -- The allowed values of a choice field, in the spelling stored.
    choices text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
-- An import finds a field by its label too: one field per label.
CREATE UNIQUE INDEX custom_fields_label ON custom_fields (tenant_id, lower(label));

-- Values by key, typed JSON: numbers as numbers, dates as "yyyy-mm-dd"
-- strings, booleans, choices in the spelling of their definition.
ALTER TABLE people ADD COLUMN custom_fields jsonb NOT NULL DEFAULT '{}';
-- Serves segment equality (custom_fields @> ...) and presence (custom_fields ? key).
CREATE INDEX people_custom_fields ON people USING gin (custom_fields);

-- What other services announce, projected per person (this migration's name
-- is the one issue 4 gave this work; it holds all of it).

-- When messaging last sent the person something (messaging.delivery.sent).
ALTER TABLE people ADD COLUMN last_contacted_at timestamptz;
CREATE INDEX people_last_contacted ON people (tenant_id, last_contacted_at);

-- Every donation once (donations.donation.succeeded), and per person and
-- currency their total and last date.
CREATE TABLE donations (
    tenant_id uuid NOT NULL,
    donation_id text NOT NULL,
    person_id uuid NOT NULL,
    amount_cents bigint NOT NULL,
    currency text NOT NULL,
    donated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, donation_id)
);
CREATE TABLE person_donations (
    tenant_id uuid NOT NULL,
    person_id uuid NOT NULL,
    currency text NOT NULL,
    total_cents bigint NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, person_id, currency)
);
CREATE INDEX person_donations_total ON person_donations (tenant_id, currency, total_cents);
CREATE INDEX person_donations_last ON person_donations (tenant_id, last_at);

-- Each person's latest state per event (events.attendance.changed).
CREATE TABLE attendance (
    tenant_id uuid NOT NULL,
    event_id text NOT NULL,
    person_id uuid NOT NULL,
    state text NOT NULL CHECK (state IN ('registered', 'attended', 'no_show', 'cancelled')),
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id, person_id)
);
CREATE INDEX attendance_attended ON attendance (tenant_id, person_id) WHERE state = 'attended';
