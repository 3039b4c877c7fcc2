-- Catalog search on PostgreSQL: trigram indexes (the pg_trgm extension,
-- shipped with PostgreSQL and trusted, so a database owner may create it) on
-- the lowercased name and description, which serve the catalog's
-- case-insensitive substring search (`LOWER(x) LIKE '%q%'`) directly.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX plugins_name_trigrams ON plugins USING gin (LOWER(name) gin_trgm_ops);

CREATE INDEX plugins_description_trigrams ON plugins USING gin (LOWER(description) gin_trgm_ops);
