-- Records' match-key uniqueness as its own index (records_key) rather
-- than a constraint of the table, so a bulk window (bulk.go) can drop it
-- while a first pass adds records and build it once, sorted, at the end.
-- The table is rebuilt with foreign keys off (links refer to it), as
-- SQLite's ALTER TABLE documentation prescribes.

-- +goose NO TRANSACTION
-- +goose Up
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE records_new (
	id        INTEGER PRIMARY KEY,
	kind      TEXT NOT NULL,
	match_key TEXT NOT NULL,
	key       TEXT NOT NULL,
	state     BLOB NOT NULL -- created, updated and golden fields (codec.go)
) STRICT;
INSERT INTO records_new (id, kind, match_key, key, state) SELECT id, kind, match_key, key, state FROM records ORDER BY id;
DROP TABLE records;
ALTER TABLE records_new RENAME TO records;
CREATE UNIQUE INDEX records_key ON records (kind, match_key);
CREATE INDEX records_heads ON records (id, kind, match_key);
COMMIT;
PRAGMA foreign_keys = ON;

-- +goose Down
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE records_old (
	id        INTEGER PRIMARY KEY,
	kind      TEXT NOT NULL,
	match_key TEXT NOT NULL,
	key       TEXT NOT NULL,
	state     BLOB NOT NULL,
	UNIQUE (kind, match_key)
) STRICT;
INSERT INTO records_old (id, kind, match_key, key, state) SELECT id, kind, match_key, key, state FROM records ORDER BY id;
DROP TABLE records;
ALTER TABLE records_old RENAME TO records;
CREATE INDEX records_heads ON records (id, kind, match_key);
COMMIT;
PRAGMA foreign_keys = ON;
