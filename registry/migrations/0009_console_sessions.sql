-- Console sessions: a browser signs in with an API token and gets a cookie
-- whose secret is stored only as its SHA-256 (`id_hash`). The session acts
-- as the token (`token_id`): revoking or expiring the token ends it. `csrf`
-- is the session's anti-forgery token, sent back by every form.

CREATE TABLE console_sessions (
    id_hash TEXT NOT NULL PRIMARY KEY,
    token_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
)
