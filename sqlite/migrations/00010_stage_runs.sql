-- The bulk window's stage (bulk.go) without a second B-tree: a staged
-- link's key is its state id (handed out in commit order, so each lands
-- at the end of the stage), and instead of an index of every staged link
-- by record (links_stage_record, an insert per link) each commit adds one
-- row to links_stage_runs naming the state ids it staged and the range of
-- their records. A record's staged links are searched in the runs whose
-- range holds it: one run in a first pass, which commits records in id
-- order.

-- +goose Up
CREATE TABLE links_stage_new (
	state_id  INTEGER PRIMARY KEY, -- link_state (id)
	system_id INTEGER NOT NULL REFERENCES link_systems (id),
	ext_id    TEXT NOT NULL,
	record_id INTEGER REFERENCES records (id),
	status    TEXT NOT NULL,
	hash      BLOB
) STRICT;
INSERT INTO links_stage_new (state_id, system_id, ext_id, record_id, status, hash)
	SELECT state_id, system_id, ext_id, record_id, status, hash FROM links_stage ORDER BY state_id;
DROP TABLE links_stage;
ALTER TABLE links_stage_new RENAME TO links_stage;
CREATE TABLE links_stage_runs (
	first_state INTEGER PRIMARY KEY,
	last_state  INTEGER NOT NULL,
	min_record  INTEGER NOT NULL,
	max_record  INTEGER NOT NULL
) STRICT;
INSERT INTO links_stage_runs (first_state, last_state, min_record, max_record)
	SELECT min(state_id), max(state_id), min(record_id), max(record_id) FROM links_stage WHERE record_id IS NOT NULL HAVING count(*) > 0;

-- +goose Down
CREATE TABLE links_stage_old (
	system_id INTEGER NOT NULL REFERENCES link_systems (id),
	ext_id    TEXT NOT NULL,
	record_id INTEGER REFERENCES records (id),
	status    TEXT NOT NULL,
	hash      BLOB,
	state_id  INTEGER NOT NULL
) STRICT;
INSERT INTO links_stage_old (system_id, ext_id, record_id, status, hash, state_id)
	SELECT system_id, ext_id, record_id, status, hash, state_id FROM links_stage ORDER BY state_id;
DROP TABLE links_stage;
DROP TABLE links_stage_runs;
ALTER TABLE links_stage_old RENAME TO links_stage;
CREATE INDEX links_stage_record ON links_stage (record_id);
