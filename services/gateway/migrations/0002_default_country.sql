-- The country an organization works in: rows without a country and phone
-- numbers without a country code are read as being there.
ALTER TABLE tenants
    ADD COLUMN default_country text NOT NULL DEFAULT 'FR' CHECK (default_country ~ '^[A-Z]{2}$');
