-- Segments kept under a name. The filter is an encoded
-- muster.contacts.v1.SegmentFilter, read again each time the segment is used.
CREATE TABLE saved_segments (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    filter bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX saved_segments_name ON saved_segments (tenant_id, name);
CREATE INDEX saved_segments_tenant ON saved_segments (tenant_id, id);

-- The segment leaves without an index of their own until now. Postal code
-- prefixes are byte ranges (~>=~, ~<~), which text_pattern_ops serves.
CREATE INDEX people_commune ON people (tenant_id, commune_insee);
CREATE INDEX people_postal_code ON people (tenant_id, postal_code text_pattern_ops);
CREATE INDEX people_created_at ON people (tenant_id, created_at);
CREATE INDEX people_email_consent ON people (tenant_id, email_consent);
