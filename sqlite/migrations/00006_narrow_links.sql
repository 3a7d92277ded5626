-- Links narrowed for a pass's millions of writes and head reads. A link's
-- row holds its key and head only, clustered by key (WITHOUT ROWID): the
-- table is the (system, external id) index, and a quiet pass's head scan
-- reads it without touching any state. The state blob moves to link_state,
-- whose integer keys a first pass hands out in order, so new states are
-- appended. The system is a small integer (link_systems), not its name on
-- every row. Before, each new link went into four B-trees, two of them
-- (the primary key and the covering links_heads) at a random place; now
-- into three, one at a random place: what a first pass's commit pays for
-- is mostly those random pages, each written to the WAL and checkpointed.

-- +goose Up
CREATE TABLE link_systems (
	id   INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE
) STRICT;
INSERT INTO link_systems (name) SELECT DISTINCT system FROM links ORDER BY system;

CREATE TABLE link_state (
	id    INTEGER PRIMARY KEY,
	state BLOB NOT NULL -- times, asserted values and shadows (codec.go)
) STRICT;
INSERT INTO link_state (id, state) SELECT rowid, state FROM links ORDER BY rowid;

CREATE TABLE links_narrow (
	system_id INTEGER NOT NULL REFERENCES link_systems (id),
	ext_id    TEXT NOT NULL,
	record_id INTEGER REFERENCES records (id), -- NULL: unmatched or disputed
	status    TEXT NOT NULL,
	hash      BLOB,
	state_id  INTEGER NOT NULL, -- link_state (id)
	PRIMARY KEY (system_id, ext_id)
) STRICT, WITHOUT ROWID;
INSERT INTO links_narrow (system_id, ext_id, record_id, status, hash, state_id)
	SELECT s.id, l.ext_id, l.record_id, l.status, l.hash, l.rowid
	FROM links l JOIN link_systems s ON s.name = l.system
	ORDER BY s.id, l.ext_id;
DROP TABLE links;
ALTER TABLE links_narrow RENAME TO links;
CREATE INDEX links_record ON links (record_id);

-- +goose Down
CREATE TABLE links_wide (
	system    TEXT NOT NULL,
	ext_id    TEXT NOT NULL,
	record_id INTEGER REFERENCES records (id),
	status    TEXT NOT NULL,
	hash      BLOB,
	state     BLOB NOT NULL,
	PRIMARY KEY (system, ext_id)
) STRICT;
INSERT INTO links_wide (system, ext_id, record_id, status, hash, state)
	SELECT s.name, l.ext_id, l.record_id, l.status, l.hash, st.state
	FROM links l JOIN link_systems s ON s.id = l.system_id JOIN link_state st ON st.id = l.state_id
	ORDER BY s.name, l.ext_id;
DROP TABLE links;
DROP TABLE link_state;
DROP TABLE link_systems;
ALTER TABLE links_wide RENAME TO links;
CREATE INDEX links_record ON links (record_id);
CREATE INDEX links_heads ON links (system, ext_id, record_id, status, hash);
