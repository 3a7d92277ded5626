-- The bulk window's stage (bulk.go) without foreign keys: each staged
-- link checked its system and its record in their B-trees, a seek each
-- on the first pass's critical path (the commit's goroutine: without them
-- BenchmarkBulkCommit's own-cpu-ns/commit went from 8.7 to 7.7 ms,
-- medians of five interleaved runs each). The commit checks them
-- itself (linkwrite.go, writeStaged): the system's id is the one it read
-- or inserted in the same transaction, and the records a batch's links
-- name are the batch's own but for a few, looked up in one query. The
-- links table keeps its foreign keys.

-- +goose Up
CREATE TABLE links_stage_new (
	state_id  INTEGER PRIMARY KEY, -- link_state (id)
	system_id INTEGER NOT NULL,    -- link_systems (id)
	ext_id    TEXT NOT NULL,
	record_id INTEGER,             -- records (id)
	status    TEXT NOT NULL,
	hash      BLOB
) STRICT;
INSERT INTO links_stage_new (state_id, system_id, ext_id, record_id, status, hash)
	SELECT state_id, system_id, ext_id, record_id, status, hash FROM links_stage ORDER BY state_id;
DROP TABLE links_stage;
ALTER TABLE links_stage_new RENAME TO links_stage;

-- +goose Down
CREATE TABLE links_stage_old (
	state_id  INTEGER PRIMARY KEY, -- link_state (id)
	system_id INTEGER NOT NULL REFERENCES link_systems (id),
	ext_id    TEXT NOT NULL,
	record_id INTEGER REFERENCES records (id),
	status    TEXT NOT NULL,
	hash      BLOB
) STRICT;
INSERT INTO links_stage_old (state_id, system_id, ext_id, record_id, status, hash)
	SELECT state_id, system_id, ext_id, record_id, status, hash FROM links_stage ORDER BY state_id;
DROP TABLE links_stage;
ALTER TABLE links_stage_old RENAME TO links_stage;
