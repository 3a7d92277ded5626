package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
)

var _ nhisync.BulkLoader = (*Store)(nil)

// The bulk window (nhisync.BulkLoader). A first pass into an empty store
// adds every record and link once; inserted one commit at a time, each
// link lands on a random leaf of links' primary key (system, ext_id) and
// each record on one of records' unique (kind, match_key) index, a page
// dirtied (and written to the WAL) per insert once the indexes outgrow
// the buffers, and each link's foreign key check locks its record (a
// write to the record's page). Inside the window these three constraints
// are dropped, commits insert links without ON CONFLICT (which needs the
// key), and EndBulk adds them back: each index built sorted in one pass,
// the foreign key checked by one join.
//
// The missing constraints are the window's mark. The process that opened
// it holds a session advisory lock (bulkKey) on a connection of its own
// for as long as it is open; a process that dies inside the window loses
// the connection and the lock with it, and the next Open that finds a
// constraint missing and can take the lock adds the constraints before
// anything else. Commits keep taking the commit lock and checking their
// fence. Readers stay exact inside the window (lookups by key scan the
// table instead of the index: slower, not wrong). A commit of another
// process that upserts links inside the window (a feed, or a pass that
// took the lease over from a stalled loader) finds no key for its ON
// CONFLICT: it adds the constraints itself, closing the window early,
// and runs again.

// bulkClass is the first half of the bulk window's advisory lock key
// ("nh"); the second is the OID of the records table, so stores in
// different schemas of one database have windows of their own.
const bulkClass = 0x6e68

// bulkKey is the SQL of the two advisory lock key halves.
const bulkKey = `$1::int, 'records'::regclass::oid::int`

// The constraints the window drops, as PostgreSQL names them (migration
// 00001: UNIQUE (kind, match_key) on records, PRIMARY KEY (system, ext_id)
// on links).
const (
	recordsKey = "records_kind_match_key_key"
	linksKey   = "links_pkey"
	// linksRecord is links' foreign key to records: checked row by row it
	// locks each link's record (FOR KEY SHARE, a write to the record's
	// page); added back it is checked by one join.
	linksRecord = "links_record_id_fkey"
)

// BeginBulk opens the bulk window when the store holds no records and no
// links, no other process has a window open on it and this one's role
// owns the tables (only an owner may drop a constraint), and reports
// whether it did. Storage failures are EINTERNAL (EUNAVAIL when the server
// is out of reach).
func (s *Store) BeginBulk(ctx context.Context) (bool, error) {
	const op = "postgres.BeginBulk"
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	if s.bulkConn != nil {
		return false, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "the bulk window is already open"}
	}
	conn, err := s.windowConn(ctx)
	if err != nil || conn == nil {
		return false, internal(op, err)
	}
	open, err := openWindow(ctx, conn)
	if err != nil || !open {
		conn.Close(context.WithoutCancel(ctx))
		return false, internal(op, err)
	}
	s.bulkConn = conn
	return true, nil
}

// windowConn takes a connection out of the pool and, on it, the bulk
// window's session lock; it returns nil when another process holds the
// lock.
func (s *Store) windowConn(ctx context.Context) (*pgx.Conn, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := pc.Hijack()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+bulkKey+`)`, bulkClass).Scan(&locked); err != nil || !locked {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// openWindow drops the two constraints, under the commit lock, when the
// store holds no records and no links, and reports whether it did.
func openWindow(ctx context.Context, conn *pgx.Conn) (bool, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, commitLock); err != nil {
		return false, err
	}
	var empty bool
	err = tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM records) AND NOT EXISTS (SELECT 1 FROM links) AND NOT EXISTS (SELECT 1 FROM outbox)`).Scan(&empty)
	if err != nil || !empty {
		return false, err
	}
	_, err = tx.Exec(ctx, `ALTER TABLE records DROP CONSTRAINT IF EXISTS `+recordsKey)
	if pgCode(err) == "42501" {
		// Not the tables' owner (the service role of README's role
		// layout): the pass runs without the window.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `ALTER TABLE links DROP CONSTRAINT IF EXISTS `+linksKey+`, DROP CONSTRAINT IF EXISTS `+linksRecord); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

// EndBulk closes the bulk window: links' primary key and records' unique
// match-key index are built, sorted. It returns EINTERNAL, naming the
// duplicate, when two links or two records of one kind share a key (the
// window's contract was broken: the constraints stay missing, reads stay
// exact, and the next Open tries again), and for storage failures.
// Without an open window it does nothing.
func (s *Store) EndBulk(ctx context.Context) error {
	const op = "postgres.EndBulk"
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	conn := s.bulkConn
	if conn == nil {
		return nil
	}
	s.bulkConn = nil
	// Closing the connection releases the window's lock.
	defer conn.Close(context.WithoutCancel(ctx))
	if err := closeWindow(ctx, conn); err != nil {
		return internal(op, err)
	}
	return nil
}

// inBulk reports whether this process holds the bulk window: its commits
// insert links without ON CONFLICT.
func (s *Store) inBulk() bool {
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	return s.bulkConn != nil
}

// beginner is what closeWindow needs: the window's connection or the pool.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// closeWindow adds the constraints the window dropped, in one transaction
// under the commit lock. Closing a window early is always safe: the
// owner's later inserts go through the keys (it only loses speed).
func closeWindow(ctx context.Context, db beginner) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, commitLock); err != nil {
		return err
	}
	missing, err := missingKeys(ctx, tx)
	if err != nil || len(missing) == 0 {
		return err
	}
	// A sorted index build of a few million keys fits this in memory.
	if _, err := tx.Exec(ctx, `SET LOCAL maintenance_work_mem = '256MB'`); err != nil {
		return err
	}
	for _, c := range missing {
		var ddl string
		switch c {
		case linksKey:
			ddl = `ALTER TABLE links ADD CONSTRAINT ` + linksKey + ` PRIMARY KEY (system, ext_id)`
		case recordsKey:
			ddl = `ALTER TABLE records ADD CONSTRAINT ` + recordsKey + ` UNIQUE (kind, match_key)`
		case linksRecord:
			ddl = `ALTER TABLE links ADD CONSTRAINT ` + linksRecord + ` FOREIGN KEY (record_id) REFERENCES records (id)`
		}
		if _, err := tx.Exec(ctx, ddl); err != nil {
			switch pgCode(err) {
			case "23505", "23503":
				return duplicate(ctx, tx, db, c, err)
			case "42501":
				return &nhisync.Error{Code: nhisync.EINTERNAL, Message: "a first pass's bulk load into this store did not end (its process stopped inside it) and this role does not own the tables to rebuild their keys: run nhisync once as the tables' owner (README, Running on PostgreSQL)", Err: err}
			}
			return err
		}
	}
	return tx.Commit(ctx)
}

// closeOthersWindow closes a window another process holds open (or
// stopped holding) when a commit of this one needs the keys: a replica
// stalled inside its first pass, whose lease passed to this one, must not
// keep the store without them.
func (s *Store) closeOthersWindow(ctx context.Context) error {
	return closeWindow(ctx, s.pool)
}

// missingKeys returns the window's constraints the store lacks.
func missingKeys(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT k FROM unnest($1::text[]) AS k WHERE NOT EXISTS (
		SELECT 1 FROM pg_constraint WHERE conname = k AND conrelid IN ('records'::regclass, 'links'::regclass))
		ORDER BY k`, []string{linksKey, linksRecord, recordsKey})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// duplicate names a key two rows share, after the build of constraint
// failed with cause in tx, which is rolled back first.
func duplicate(ctx context.Context, tx pgx.Tx, db beginner, constraint string, cause error) error {
	if err := tx.Rollback(ctx); err != nil {
		return errors.Join(cause, err)
	}
	var a, b string
	var q, what string
	switch constraint {
	case linksKey:
		q, what = `SELECT system, ext_id FROM links GROUP BY system, ext_id HAVING count(*) > 1 LIMIT 1`, "link %s/%s twice"
	case linksRecord:
		q, what = `SELECT l.system, l.ext_id FROM links l WHERE l.record_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM records r WHERE r.id = l.record_id) LIMIT 1`, "link %s/%s of a record it did not write"
	default:
		q, what = `SELECT kind, min(key) FROM records GROUP BY kind, match_key HAVING count(*) > 1 LIMIT 1`, "two %s records with the match key of %s"
	}
	if err := db.QueryRow(ctx, q).Scan(&a, &b); err != nil {
		return errors.Join(cause, err)
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Message: fmt.Sprintf(
		"the first pass's bulk load wrote "+what+" (a bug in the pass); report it: nhisync will not use the store until one of them is removed", a, b), Err: cause}
}

// repairWindow closes a bulk window a process left open when it died:
// if a constraint is missing and no live process holds the window's lock,
// it adds the constraints back. Open calls it before anything else reads
// the store.
func (s *Store) repairWindow(ctx context.Context) error {
	missing, err := missingKeys(ctx, s.pool)
	if err != nil || len(missing) == 0 {
		return err
	}
	conn, err := s.windowConn(ctx)
	if err != nil || conn == nil {
		// A live process holds the window: it builds the keys itself.
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return closeWindow(ctx, conn)
}
