-- An import's issues are listed in file order: rows written by several
-- writers at once record their issues out of order.
CREATE INDEX import_issues_line ON import_issues (import_id, line, id);
DROP INDEX import_issues_import;
