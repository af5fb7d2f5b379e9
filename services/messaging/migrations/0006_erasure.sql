-- Erased people. An erasure blanks the address and names of the person's
-- deliveries and replaces each of their addresses in suppressions and
-- bounces by its HMAC-SHA256 (privacy.suppression_key, lower-cased address,
-- 64 hex digits, never an '@'): suppressions.email_key then holds either an
-- address or such a hash.
--
-- Launch computes the same hash for every new delivery, so that the
-- send-time check (suppressions.email_key = lower(email) or = email_hash)
-- still blocks an erased address. Deliveries made before this migration
-- have none: their person's erasure fills it from the address it blanks.
ALTER TABLE deliveries ADD COLUMN email_hash text;
CREATE INDEX deliveries_person ON deliveries (tenant_id, person_id);
