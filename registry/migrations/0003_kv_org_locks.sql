-- One row per organization that writes kv keys, with the number of keys its
-- plugins hold: new keys of one org are written one transaction at a time
-- (the row is locked first), so the per-namespace and per-organization key
-- quotas are exact under concurrent writers on PostgreSQL as on SQLite, and
-- the org's count is read from here, not by scanning `kv`.

CREATE TABLE kv_org_locks (
    org TEXT PRIMARY KEY,
    keys BIGINT NOT NULL DEFAULT 0
);
