-- Byte quotas of the plugins' kv namespaces: each entry's size (its key's
-- bytes plus its value's), and the keys and bytes each namespace and each
-- organization holds, kept in the same transaction as the entries (under
-- the org's lock row, see 0003), so a quota is checked without scanning
-- `kv`. Entries written before this migration are counted from their text
-- (a base64 value of n characters holds about 3n/4 bytes), and each
-- organization's counts are taken anew from them (0003 counted only keys
-- written after it).

ALTER TABLE kv ADD COLUMN size BIGINT NOT NULL DEFAULT 0;

UPDATE kv SET size = length(CAST(key AS BLOB)) + (length(value) / 4) * 3;

CREATE TABLE kv_namespaces (
    namespace TEXT PRIMARY KEY,
    keys BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0
);

INSERT INTO kv_namespaces (namespace, keys, bytes)
    SELECT namespace, COUNT(*), SUM(size) FROM kv GROUP BY namespace;

ALTER TABLE kv_org_locks ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;

INSERT INTO kv_org_locks (org, keys, bytes)
    SELECT CASE WHEN instr(namespace, '/') > 0 THEN substr(namespace, 1, instr(namespace, '/') - 1) ELSE namespace END, COUNT(*), SUM(size) FROM kv WHERE true GROUP BY 1
    ON CONFLICT (org) DO UPDATE SET keys = excluded.keys, bytes = excluded.bytes;
