-- When the OCI referrer of a release's statement and of each approval was
-- written (after the change committed; empty: still to write, see
-- domain/releases/referrers.rs). Rows from before are written again once,
-- which changes nothing where the referrer exists.

ALTER TABLE releases ADD COLUMN referrer_at BIGINT;

ALTER TABLE approvals ADD COLUMN referrer_at BIGINT;
