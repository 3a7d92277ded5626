-- The first schema of the embedded store. Time columns are fixed-width
-- RFC 3339 text in UTC (2006-01-02T15:04:05.000000000Z), so they sort as
-- text and round-trip to the nanosecond. What no query filters on is kept
-- whole: as JSON (data) for items, in a compact binary form (state) for
-- the records and links a pass writes by the million.

-- +goose Up
CREATE TABLE records (
	id        INTEGER PRIMARY KEY,
	kind      TEXT NOT NULL,
	match_key TEXT NOT NULL,
	key       TEXT NOT NULL,
	state     BLOB NOT NULL, -- created, updated and golden fields (codec.go)
	UNIQUE (kind, match_key)
) STRICT;

CREATE TABLE links (
	system    TEXT NOT NULL,
	ext_id    TEXT NOT NULL,
	record_id INTEGER REFERENCES records (id), -- NULL: unmatched or disputed
	status    TEXT NOT NULL,
	hash      BLOB,
	state     BLOB NOT NULL, -- times, asserted values and shadows (codec.go)
	PRIMARY KEY (system, ext_id)
) STRICT;
CREATE INDEX links_record ON links (record_id);

CREATE TABLE conflicts (
	id        INTEGER PRIMARY KEY,
	kind      TEXT NOT NULL,
	record_id INTEGER NOT NULL,
	field     TEXT NOT NULL,
	status    TEXT NOT NULL,
	systems   TEXT NOT NULL, -- proposing systems, each between commas: ,a,b,
	data      TEXT NOT NULL  -- JSON: the whole conflict
) STRICT;
CREATE INDEX conflicts_record ON conflicts (record_id);
CREATE INDEX conflicts_status ON conflicts (status);

CREATE TABLE quarantine (
	id        INTEGER PRIMARY KEY,
	kind      TEXT NOT NULL,
	record_id INTEGER NOT NULL,
	field     TEXT NOT NULL,
	system    TEXT NOT NULL,
	status    TEXT NOT NULL,
	data      TEXT NOT NULL
) STRICT;
CREATE INDEX quarantine_record ON quarantine (record_id);
CREATE INDEX quarantine_status ON quarantine (status);

CREATE TABLE approvals (
	id        INTEGER PRIMARY KEY,
	kind      TEXT NOT NULL,
	record_id INTEGER NOT NULL,
	field     TEXT NOT NULL,
	system    TEXT NOT NULL,
	status    TEXT NOT NULL,
	data      TEXT NOT NULL
) STRICT;
CREATE INDEX approvals_record ON approvals (record_id);
CREATE INDEX approvals_status ON approvals (status);

CREATE TABLE outbox (
	id        INTEGER PRIMARY KEY,
	system    TEXT NOT NULL,
	ext_id    TEXT NOT NULL,
	record_id INTEGER NOT NULL,
	field     TEXT NOT NULL,
	status    TEXT NOT NULL,
	next_at   TEXT NOT NULL,
	data      TEXT NOT NULL
) STRICT;
CREATE INDEX outbox_record ON outbox (record_id);
CREATE INDEX outbox_due ON outbox (next_at, id);

CREATE TABLE systems (
	name TEXT PRIMARY KEY,
	data TEXT NOT NULL
) STRICT;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

-- One sequence hands out the IDs of records and of every item.
CREATE TABLE ids (
	name TEXT PRIMARY KEY,
	next INTEGER NOT NULL
) STRICT;
INSERT INTO ids (name, next) VALUES ('id', 1);

CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	holder  TEXT NOT NULL,
	expires TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	record_id INTEGER,
	leaf      BLOB NOT NULL, -- the exact bytes hashed for the Merkle leaf
	hash      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_record ON audit (record_id);

-- The audit log is append-only: entries are never changed or removed, and
-- each new one follows the last (INSERT OR REPLACE would otherwise delete
-- an entry without firing a DELETE trigger).
-- +goose StatementBegin
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_append BEFORE INSERT ON audit
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit)
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only: seq must follow the last entry');
END;
-- +goose StatementEnd

CREATE TABLE checkpoints (
	size INTEGER PRIMARY KEY,
	root BLOB NOT NULL,
	note BLOB NOT NULL,
	at   TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE checkpoints;
DROP TABLE audit;
DROP TABLE leases;
DROP TABLE ids;
DROP TABLE meta;
DROP TABLE systems;
DROP TABLE outbox;
DROP TABLE approvals;
DROP TABLE quarantine;
DROP TABLE conflicts;
DROP TABLE links;
DROP TABLE records;
