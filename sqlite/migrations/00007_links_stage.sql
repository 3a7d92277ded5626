-- A first pass into an empty store stages its new links here (bulk.go):
-- appended in commit order, then moved into links sorted by key when the
-- load ends, so no commit writes a leaf of links' random-key B-tree.

-- +goose Up
CREATE TABLE links_stage (
	system_id INTEGER NOT NULL REFERENCES link_systems (id),
	ext_id    TEXT NOT NULL,
	record_id INTEGER REFERENCES records (id),
	status    TEXT NOT NULL,
	hash      BLOB,
	state_id  INTEGER NOT NULL
) STRICT;
CREATE INDEX links_stage_record ON links_stage (record_id);

-- +goose Down
INSERT INTO links (system_id, ext_id, record_id, status, hash, state_id)
	SELECT system_id, ext_id, record_id, status, hash, state_id FROM links_stage ORDER BY system_id, ext_id;
DROP TABLE links_stage;
