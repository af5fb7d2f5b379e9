-- When messaging last sent each person something, kept apart from `people`:
-- every group of deliveries sent moves it, and on `people` that update
-- rewrote the person's entry in each of its indexes (the column was indexed,
-- so the update could never stay on its page). Here it touches two narrow
-- indexes, as donations' totals do.
CREATE TABLE last_contacts (
    tenant_id uuid NOT NULL,
    person_id uuid NOT NULL,
    contacted_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, person_id)
);
CREATE INDEX last_contacts_at ON last_contacts (tenant_id, contacted_at);

INSERT INTO last_contacts (tenant_id, person_id, contacted_at)
SELECT tenant_id, id, last_contacted_at FROM people WHERE last_contacted_at IS NOT NULL;

DROP INDEX people_last_contacted;
ALTER TABLE people DROP COLUMN last_contacted_at;
