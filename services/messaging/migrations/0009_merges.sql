-- People that contacts merged into another (contacts.person.merged). Their
-- deliveries, bounces and suppressions are re-pointed to the survivor,
-- except a delivery of a campaign that reached the survivor too (a campaign
-- has one delivery per person): it keeps the merged id, and this table
-- leads from the survivor to it (an erasure of the survivor erases it too).
-- A survivor merged later is followed: survivor_id is always the current one.
CREATE TABLE person_merges (
    tenant_id uuid NOT NULL,
    merged_id uuid NOT NULL,
    survivor_id uuid NOT NULL,
    merge_id uuid NOT NULL,
    merged_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, merged_id)
);
CREATE INDEX person_merges_survivor ON person_merges (tenant_id, survivor_id);
CREATE INDEX suppressions_person ON suppressions (tenant_id, person_id);
