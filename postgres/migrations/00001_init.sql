-- The schema of the PostgreSQL store: the SQLite store's tables, in the
-- PostgreSQL dialect. Time columns are fixed-width RFC 3339 text in UTC
-- (2006-01-02T15:04:05.000000000Z), as in SQLite: they sort as text and
-- keep the nanosecond, which timestamptz would round to the microsecond.
-- Text columns that keyset pages walk are COLLATE "C" (byte order, as
-- Go and SQLite compare strings).

-- +goose Up
CREATE TABLE records (
	id        bigint PRIMARY KEY,
	kind      text COLLATE "C" NOT NULL,
	match_key text COLLATE "C" NOT NULL,
	key       text NOT NULL,
	state     bytea NOT NULL, -- created, updated and golden fields (codec.go)
	UNIQUE (kind, match_key)
);

CREATE TABLE links (
	system    text COLLATE "C" NOT NULL,
	ext_id    text COLLATE "C" NOT NULL,
	record_id bigint REFERENCES records (id), -- NULL: unmatched or disputed
	status    text NOT NULL,
	hash      bytea,
	state     bytea NOT NULL,
	PRIMARY KEY (system, ext_id)
);
CREATE INDEX links_record ON links (record_id);

CREATE TABLE conflicts (
	id        bigint PRIMARY KEY,
	kind      text NOT NULL,
	record_id bigint NOT NULL,
	field     text NOT NULL,
	status    text NOT NULL,
	systems   text[] NOT NULL, -- proposing systems
	data      text NOT NULL    -- JSON: the whole conflict
);
CREATE INDEX conflicts_record ON conflicts (record_id);
CREATE INDEX conflicts_status ON conflicts (status, id);

CREATE TABLE quarantine (
	id        bigint PRIMARY KEY,
	kind      text NOT NULL,
	record_id bigint NOT NULL,
	field     text NOT NULL,
	system    text NOT NULL,
	status    text NOT NULL,
	data      text NOT NULL
);
CREATE INDEX quarantine_record ON quarantine (record_id);
CREATE INDEX quarantine_status ON quarantine (status, id);

CREATE TABLE approvals (
	id        bigint PRIMARY KEY,
	kind      text NOT NULL,
	record_id bigint NOT NULL,
	field     text NOT NULL,
	system    text NOT NULL,
	status    text NOT NULL,
	data      text NOT NULL
);
CREATE INDEX approvals_record ON approvals (record_id);
CREATE INDEX approvals_status ON approvals (status, id);

CREATE TABLE outbox (
	id        bigint PRIMARY KEY,
	system    text COLLATE "C" NOT NULL,
	ext_id    text COLLATE "C" NOT NULL,
	record_id bigint NOT NULL,
	field     text NOT NULL,
	status    text NOT NULL,
	next_at   text COLLATE "C" NOT NULL,
	data      text NOT NULL
);
CREATE INDEX outbox_record ON outbox (record_id);
CREATE INDEX outbox_due ON outbox (next_at, id);

CREATE TABLE systems (
	name text COLLATE "C" PRIMARY KEY,
	data text NOT NULL
);

CREATE TABLE meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);

-- One counter hands out the IDs of records and of every item.
CREATE TABLE ids (
	name text PRIMARY KEY,
	next bigint NOT NULL
);
INSERT INTO ids (name, next) VALUES ('id', 1);

-- Leases: the pass lease, one feed lease per system. epoch is the
-- fencing token: it grows whenever the lease passes to a holder that did
-- not hold it just before; a released lease keeps its row (holder '').
CREATE TABLE leases (
	name    text PRIMARY KEY,
	holder  text NOT NULL,
	expires text COLLATE "C" NOT NULL,
	epoch   bigint NOT NULL DEFAULT 0
);

CREATE TABLE audit (
	seq       bigint PRIMARY KEY,
	record_id bigint,
	leaf      bytea NOT NULL, -- the exact bytes hashed for the Merkle leaf
	hash      text NOT NULL
);
CREATE INDEX audit_record ON audit (record_id);

-- The audit log is append-only for every role, its owner included:
-- entries are never changed or removed (UPDATE, DELETE and TRUNCATE are
-- refused), and each new one follows the last. README "Running on
-- PostgreSQL" gives the role layout that adds privileges to this.
-- +goose StatementBegin
CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION audit_append() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	last bigint;
BEGIN
	SELECT seq INTO last FROM audit ORDER BY seq DESC LIMIT 1;
	IF NEW.seq IS DISTINCT FROM coalesce(last, 0) + 1 THEN
		RAISE EXCEPTION 'audit log is append-only: seq must follow the last entry' USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_append BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_append();

CREATE TABLE checkpoints (
	size      bigint PRIMARY KEY,
	root      bytea NOT NULL,
	note      bytea NOT NULL,
	at        text NOT NULL,
	state     bytea,
	last_hash text
);

-- API and console tokens (SPEC §7): only the SHA-256 of a secret.
CREATE TABLE tokens (
	name       text COLLATE "C" PRIMARY KEY,
	role       text NOT NULL,
	hash       bytea NOT NULL UNIQUE,
	created    text NOT NULL,
	created_by text NOT NULL
);

-- +goose Down
DROP TABLE tokens;
DROP TABLE checkpoints;
DROP TABLE audit;
DROP FUNCTION audit_append();
DROP FUNCTION audit_refuse();
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
