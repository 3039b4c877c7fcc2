-- Warden's control-plane schema. Portable SQL: the same text runs on SQLite and
-- PostgreSQL (TEXT, BIGINT; times are Unix milliseconds; JSON is stored as TEXT).

CREATE TABLE orgs (
    name TEXT PRIMARY KEY,
    operator BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    org TEXT NOT NULL REFERENCES orgs (name),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE signing_keys (
    org TEXT NOT NULL REFERENCES orgs (name),
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (org, key_id)
);

CREATE TABLE plugins (
    org TEXT NOT NULL REFERENCES orgs (name),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org, name)
);

CREATE TABLE releases (
    org TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    envelope TEXT NOT NULL,
    statement_digest TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    component_digest TEXT NOT NULL,
    component_size BIGINT NOT NULL,
    publisher_key TEXT NOT NULL,
    published_by TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    functions TEXT NOT NULL,
    imports TEXT NOT NULL,
    granted_capabilities TEXT,
    granted_limits TEXT,
    reason TEXT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    PRIMARY KEY (org, name, version),
    FOREIGN KEY (org, name) REFERENCES plugins (org, name)
);

CREATE INDEX releases_by_status ON releases (org, status);

CREATE TABLE approvals (
    org TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    key_id TEXT NOT NULL,
    envelope TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, name, version, key_id),
    FOREIGN KEY (org, name, version) REFERENCES releases (org, name, version)
);

CREATE TABLE audit_heads (
    org TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE audit (
    org TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (org, seq)
);
