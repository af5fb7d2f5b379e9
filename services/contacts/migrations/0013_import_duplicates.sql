-- What duplicate detection did after an import: pairs listed for review and
-- pairs merged by the organization's rules, shown with the import's counts.
ALTER TABLE imports
    ADD COLUMN duplicates_listed bigint NOT NULL DEFAULT 0,
    ADD COLUMN duplicates_merged bigint NOT NULL DEFAULT 0;
