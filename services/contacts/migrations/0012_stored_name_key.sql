-- The folded name duplicate detection compares, kept with the row: computed
-- once when a name is written (as the expression index did) and read as it
-- is, where detection over a million people folded every name four times.
ALTER TABLE people
    ADD COLUMN name_key text GENERATED ALWAYS AS (muster_name_key(first_name, last_name)) STORED;

DROP INDEX people_name_key;
CREATE INDEX people_name_key ON people (tenant_id, name_key);
