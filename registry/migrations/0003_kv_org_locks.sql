-- One row per organization that writes kv keys: new keys of one org are
-- written one transaction at a time (the row is locked first), so the
-- per-namespace and per-organization key quotas are exact under concurrent
-- writers on PostgreSQL as on SQLite.

CREATE TABLE kv_org_locks (
    org TEXT PRIMARY KEY
);
