-- Where each person lives, from the postal code: commune (INSEE code) and
-- région beside the département, and the time zone used for quiet hours
-- and events.
ALTER TABLE people
    ADD COLUMN commune_insee text,
    ADD COLUMN region text,
    ADD COLUMN time_zone text;
CREATE INDEX people_departement ON people (tenant_id, departement);
CREATE INDEX people_region ON people (tenant_id, region);
