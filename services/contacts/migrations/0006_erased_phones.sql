-- Phone numbers of erased people, kept like their addresses in
-- erased_addresses: only as HMAC-SHA256 (privacy.suppression_key) of the
-- E.164 form, so that an import cannot bring an erased person back through
-- their phone number alone, without the number being kept.
CREATE TABLE erased_phones (
    tenant_id uuid NOT NULL,
    phone_hash text NOT NULL,
    erasure_id uuid NOT NULL REFERENCES erasure_requests (id),
    erased_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, phone_hash)
);
