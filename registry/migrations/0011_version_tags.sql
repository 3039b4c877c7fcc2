-- When the version tag of a release was known to be in place: written in
-- an external registry after the record committed, or (embedded store)
-- written with the record. Empty: still to write or to mark, see
-- domain/releases/tags.rs. Every release from before is marked.

ALTER TABLE releases ADD COLUMN tagged_at BIGINT;

UPDATE releases SET tagged_at = created_at;

CREATE INDEX releases_untagged ON releases (created_at) WHERE tagged_at IS NULL;
