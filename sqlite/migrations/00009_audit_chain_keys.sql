-- The audit log's append guard without a trigger per row. The trigger
-- audit_append looked up the last entry for every entry inserted (a
-- sub-program and a cursor a row: a quarter of the CPU of appending an
-- entry, on the first pass's critical path). Keys give the same guard:
-- every entry references the one before it (prev, computed from seq, so
-- nothing is stored or bound for it), and the log's head (audit_head, set
-- once by each commit that appends) references the last entry. So an
-- insert that leaves a gap or goes into the past names an entry that does
-- not exist, and REPLACE, which deletes the entry it overwrites, deletes
-- one that the next entry or the head references (ON DELETE RESTRICT):
-- both fail. UPDATE and DELETE stay refused by their triggers. Foreign
-- keys hold on every connection the store opens (foreign_keys=1).

-- +goose NO TRANSACTION
-- +goose Up
BEGIN IMMEDIATE;
ALTER TABLE audit ADD COLUMN prev INTEGER AS (nullif(seq - 1, 0)) VIRTUAL REFERENCES audit (seq) ON DELETE RESTRICT;
CREATE TABLE audit_head (
	one INTEGER PRIMARY KEY CHECK (one = 1),
	seq INTEGER REFERENCES audit (seq) ON DELETE RESTRICT -- NULL: the log is empty
) STRICT;
INSERT INTO audit_head (one, seq) SELECT 1, max(seq) FROM audit;
DROP TRIGGER audit_append;
COMMIT;

-- +goose Down
-- The column a key refers through cannot be dropped: the table is
-- rebuilt, with foreign keys off (as SQLite's ALTER TABLE documentation
-- prescribes), and its triggers and index made again.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
DROP TABLE audit_head;
CREATE TABLE audit_old (
	seq       INTEGER PRIMARY KEY,
	record_id INTEGER,
	leaf      BLOB NOT NULL,
	hash      TEXT NOT NULL
) STRICT;
INSERT INTO audit_old (seq, record_id, leaf, hash) SELECT seq, record_id, leaf, hash FROM audit ORDER BY seq;
DROP TABLE audit;
ALTER TABLE audit_old RENAME TO audit;
CREATE INDEX audit_record ON audit (record_id);
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
COMMIT;
PRAGMA foreign_keys = ON;
