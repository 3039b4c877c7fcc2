-- Plugin secrets (`warden:plugin/secrets`), encrypted with XChaCha20-Poly1305
-- under the server's secrets key file, which the database never holds:
-- `key_id` names that key (the first 8 bytes of its SHA-256, hex); `nonce`
-- and `ciphertext` are base64 text, so the same column types serve SQLite and
-- PostgreSQL. The associated data binds each value to its org, plugin and
-- name (see domain/secrets/cipher.rs).

CREATE TABLE secrets (
    org TEXT NOT NULL,
    plugin TEXT NOT NULL,
    name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    set_by TEXT NOT NULL,
    PRIMARY KEY (org, plugin, name)
)
