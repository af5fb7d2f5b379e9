-- The ledger position (contacts' consent_events id) of the last change of
-- the general e-mail consent applied per address. Changes reach messaging in
-- any order — a consumer takes several messages at once, a retry comes back
-- later — and an older change must never undo a newer one: a grant from
-- early in a file lifting the withdrawal that follows it. Erasure deletes the
-- address's row with its suppression.
CREATE TABLE consent_versions (
    tenant_id uuid NOT NULL,
    email_key text NOT NULL,
    sequence bigint NOT NULL,
    PRIMARY KEY (tenant_id, email_key)
);
