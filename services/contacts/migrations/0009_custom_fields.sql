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
