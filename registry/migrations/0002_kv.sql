-- The durable key-value namespaces of plugins (`warden:plugin/kv`). Values are
-- base64 text so the same column type works on SQLite and PostgreSQL.

CREATE TABLE kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);
