-- The embedded OCI store(s) this database's releases live in: with
-- PostgreSQL, every replica must use the same one (a shared data
-- directory), or an external registry. A replica whose store is not the
-- recorded one refuses to start.
CREATE TABLE embedded_store (
    store_id TEXT PRIMARY KEY,
    first_seen BIGINT NOT NULL
);
