-- Catalog search on SQLite: a full-text index of plugin names and
-- descriptions with the trigram tokenizer (case-insensitive), so a search for
-- any substring of three characters or more is an index lookup instead of a
-- scan of every row. `plugin_search_ids` gives each plugin a stable integer id
-- (rowids of `plugins` may change with VACUUM); triggers keep both in step
-- with `plugins` in the same transaction as every write. The domain's search
-- uses the index only to find candidates and checks each one with the same
-- case-insensitive substring test as before.

CREATE TABLE plugin_search_ids (
    id INTEGER PRIMARY KEY,
    org TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (org, name)
);

CREATE VIRTUAL TABLE plugin_search USING fts5(name, description, tokenize = 'trigram', detail = 'none');

INSERT INTO plugin_search_ids (org, name) SELECT org, name FROM plugins ORDER BY org, name;

INSERT INTO plugin_search (rowid, name, description) SELECT i.id, p.name, p.description FROM plugin_search_ids i JOIN plugins p ON p.org = i.org AND p.name = i.name;

CREATE TRIGGER plugin_search_insert AFTER INSERT ON plugins BEGIN INSERT INTO plugin_search_ids (org, name) VALUES (new.org, new.name); INSERT INTO plugin_search (rowid, name, description) VALUES (last_insert_rowid(), new.name, new.description); END;

CREATE TRIGGER plugin_search_update AFTER UPDATE OF name, description ON plugins BEGIN UPDATE plugin_search SET name = new.name, description = new.description WHERE rowid = (SELECT id FROM plugin_search_ids WHERE org = old.org AND name = old.name); UPDATE plugin_search_ids SET name = new.name WHERE org = old.org AND name = old.name; END;

CREATE TRIGGER plugin_search_delete AFTER DELETE ON plugins BEGIN DELETE FROM plugin_search WHERE rowid = (SELECT id FROM plugin_search_ids WHERE org = old.org AND name = old.name); DELETE FROM plugin_search_ids WHERE org = old.org AND name = old.name; END;
