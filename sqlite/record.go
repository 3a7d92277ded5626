package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// querier is what reads need: the reader pool or a read transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// scanPage is how many records ScanRecords loads per read transaction.
var scanPage = 500

// ScanRecordHeads streams the head of every golden record in ID order,
// a page at a time on a head connection (see ScanLinkHeads). An
// error from fn stops the scan and is returned as is; storage failures are
// EINTERNAL.
func (s *Store) ScanRecordHeads(ctx context.Context, fn func(nhisync.RecordHead) error) error {
	const op = "sqlite.ScanRecordHeads"
	page := make([]nhisync.RecordHead, 0, headPage)
	kinds := interned{}
	// keys gathers a page's match keys, ends where each ends; the page's
	// heads then share one string.
	var keys []byte
	ends := make([]uint32, 0, headPage)
	var after int64
	for {
		page, keys, ends = page[:0], keys[:0], ends[:0]
		err := s.headScan(ctx, func(c *headConn) error {
			rows, err := c.query(`SELECT id, kind, match_key FROM records WHERE id > ? ORDER BY id LIMIT ?`, after, int64(headPage))
			if err != nil {
				return err
			}
			defer rows.done()
			for {
				if ok, err := rows.next(); !ok {
					return err
				}
				var h nhisync.RecordHead
				if h.ID, err = rows.int(0); err != nil {
					return err
				}
				kind, err := rows.text(1)
				if err != nil {
					return err
				}
				h.Kind = kinds.bytes(kind)
				key, err := rows.text(2)
				if err != nil {
					return err
				}
				keys = append(keys, key...)
				ends = append(ends, uint32(len(keys)))
				page = append(page, h)
			}
		})
		if err != nil {
			return internal(op, err)
		}
		keyText := string(keys)
		var at uint32
		for i := range page {
			page[i].MatchKey = keyText[at:ends[i]]
			at = ends[i]
		}
		for _, h := range page {
			if err := fn(h); err != nil {
				return err
			}
		}
		if len(page) < headPage {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// LoadRecords returns the records with the given IDs, in the order asked
// and each once, with their links (every status), open conflicts and
// quarantine items, approvals that are not superseded and every outbox
// write. Missing IDs are left out. It reads one consistent snapshot.
// Storage failures are EINTERNAL.
func (s *Store) LoadRecords(ctx context.Context, ids []int64) ([]*nhisync.Record, error) {
	const op = "sqlite.LoadRecords"
	if len(ids) == 0 {
		return nil, nil
	}
	var out []*nhisync.Record
	gen := s.links.loaded() // before the read's snapshot
	if nhisync.IsForCommit(ctx) {
		// forCommitReads
		s.mapWriter(ctx)
	}
	err := readTx(ctx, s.r, func(tx *sql.Tx) error {
		byID, err := s.loadRecords(ctx, tx, gen, `id IN (SELECT value FROM json_each(?))`, string(appendIDs(nil, ids)))
		if err != nil {
			return err
		}
		out = make([]*nhisync.Record, 0, len(byID))
		for _, id := range ids {
			if r := byID[id]; r != nil {
				out = append(out, r)
				delete(byID, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return out, nil
}

// RecordKeys returns the display key of each record with the given IDs,
// by ID; missing IDs are left out. Storage failures are EINTERNAL.
//
// It reads on the writer connection (see the package doc).
func (s *Store) RecordKeys(ctx context.Context, ids []int64) (map[int64]string, error) {
	const op = "sqlite.RecordKeys"
	out := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.w.QueryContext(ctx, `SELECT id, key FROM records WHERE id IN (SELECT value FROM json_each(?))`, string(appendIDs(nil, ids)))
	if err != nil {
		return nil, internal(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var key string
		if err := rows.Scan(&id, &key); err != nil {
			return nil, internal(op, err)
		}
		out[id] = key
	}
	if err := rows.Err(); err != nil {
		return nil, internal(op, err)
	}
	return out, nil
}

// RecordIDsByKey returns, by key, the ID of the record of kind holding
// each of keys (normalized match keys); keys no record holds are left
// out. It reads on a reader, each key found through the (kind,
// match_key) index: one query with the keys as a JSON array, or, when one
// of them is not valid UTF-8 or holds a NUL (which JSON would not carry
// byte for byte: appendJSONStrings), a query per lookupKeysChunk keys
// bound as parameters. Storage failures are EINTERNAL.
func (s *Store) RecordIDsByKey(ctx context.Context, kind string, keys []string) (map[string]int64, error) {
	const op = "sqlite.RecordIDsByKey"
	out := make(map[string]int64, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if list := appendJSONStrings(nil, keys); list != nil {
		if err := s.recordIDsByKey(ctx, out, recordIDsByKeySQL, kind, string(list)); err != nil {
			return nil, internal(op, err)
		}
		return out, nil
	}
	args := make([]any, 0, 1+min(len(keys), lookupKeysChunk))
	for start := 0; start < len(keys); start += lookupKeysChunk {
		part := keys[start:min(start+lookupKeysChunk, len(keys))]
		args = append(args[:0], kind)
		for _, key := range part {
			args = append(args, key)
		}
		if err := s.recordIDsByKey(ctx, out, recordIDsByKeysSQL(len(part)), args...); err != nil {
			return nil, internal(op, err)
		}
	}
	return out, nil
}

// recordIDsByKeySQL is RecordIDsByKey's query for a kind (?1) and match
// keys given as a JSON array of strings (?2).
const recordIDsByKeySQL = `SELECT match_key, id FROM records WHERE kind = ?1 AND match_key IN (SELECT value FROM json_each(?2))`

// recordIDsByKeysSQL is RecordIDsByKey's query for a kind and n match
// keys, each a parameter (anonymous, as loadLinksSQL's).
func recordIDsByKeysSQL(n int) string {
	return `SELECT match_key, id FROM records WHERE kind = ? AND match_key IN (?` + strings.Repeat(`, ?`, n-1) + `)`
}

// lookupKeysChunk is how many keys one bound-parameter query of
// RecordIDsByKey asks for, well under SQLite's limit of parameters.
const lookupKeysChunk = 500

// recordIDsByKey runs one of RecordIDsByKey's queries, adding what it
// finds to out.
func (s *Store) recordIDsByKey(ctx context.Context, out map[string]int64, query string, args ...any) error {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var id int64
		if err := rows.Scan(&key, &id); err != nil {
			return err
		}
		out[key] = id
	}
	return rows.Err()
}

// CountRecords returns how many records each kind has, counted over the
// (kind, match_key) index. Storage failures are EINTERNAL.
func (s *Store) CountRecords(ctx context.Context) (map[string]int, error) {
	const op = "sqlite.CountRecords"
	rows, err := s.r.QueryContext(ctx, `SELECT kind, count(*) FROM records GROUP BY kind`)
	if err != nil {
		return nil, internal(op, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, internal(op, err)
		}
		out[kind] = n
	}
	if err := rows.Err(); err != nil {
		return nil, internal(op, err)
	}
	return out, nil
}

// RecordByKey returns the record of kind with the normalized match key,
// loaded as LoadRecords does. It returns ENOTFOUND when there is none.
func (s *Store) RecordByKey(ctx context.Context, kind, matchKey string) (*nhisync.Record, error) {
	const op = "sqlite.RecordByKey"
	var r *nhisync.Record
	gen := s.links.loaded() // before the read's snapshot
	err := s.read(ctx, func(tx *sql.Tx) error {
		byID, err := s.loadRecords(ctx, tx, gen, `kind = ? AND match_key = ?`, kind, matchKey)
		for _, rec := range byID {
			r = rec
		}
		return err
	})
	if err != nil {
		return nil, internal(op, err)
	}
	if r == nil {
		return nil, &nhisync.Error{Code: nhisync.ENOTFOUND, Op: op, Message: fmt.Sprintf("no %s record with that key", kind)}
	}
	return r, nil
}

// ScanRecords streams full records of kind ("" for all) in ID order, as
// LoadRecords loads them. It loads a page at a time, each page from one
// snapshot, and holds no read open while fn runs, so fn may use the store.
// An error from fn stops the scan and is returned as is; storage failures
// are EINTERNAL.
func (s *Store) ScanRecords(ctx context.Context, kind string, fn func(*nhisync.Record) error) error {
	const op = "sqlite.ScanRecords"
	var after int64
	for {
		page, err := s.recordsAfter(ctx, kind, after, scanPage)
		if err != nil {
			return internal(op, err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		after = page[len(page)-1].ID
	}
}

// RecordsAfter returns at most limit full records of kind ("" for all)
// whose ID is above after, in ID order, loaded as LoadRecords loads them
// from one snapshot. It returns EINVALID for a limit below 1 and
// EINTERNAL for storage failures.
func (s *Store) RecordsAfter(ctx context.Context, kind string, after int64, limit int) ([]*nhisync.Record, error) {
	const op = "sqlite.RecordsAfter"
	if limit < 1 {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "a page holds at least one record"}
	}
	page, err := s.recordsAfter(ctx, kind, after, limit)
	return page, internal(op, err)
}

// GoldenAfter is RecordsAfter without links and open work: the golden
// fields only, from one query on the records table, so a filter scanning
// many records decodes nothing it does not read. It returns EINVALID for a
// limit below 1 and EINTERNAL for storage failures.
func (s *Store) GoldenAfter(ctx context.Context, kind string, after int64, limit int) ([]*nhisync.Record, error) {
	const op = "sqlite.GoldenAfter"
	if limit < 1 {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "a page holds at least one record"}
	}
	q, args := `SELECT id, kind, match_key, key, state FROM records WHERE id > ? ORDER BY id LIMIT ?`, []any{after, limit}
	if kind != "" {
		// +kind: walk the table in ID order (see recordsAfter).
		q, args = `SELECT id, kind, match_key, key, state FROM records WHERE +kind = ? AND id > ? ORDER BY id LIMIT ?`, []any{kind, after, limit}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, internal(op, err)
	}
	defer rows.Close()
	out := make([]*nhisync.Record, 0, limit)
	var state sql.RawBytes
	var dec decoder
	for rows.Next() {
		r := &nhisync.Record{}
		if err := rows.Scan(&r.ID, &r.Kind, &r.MatchKey, &r.Key, &state); err != nil {
			return nil, internal(op, err)
		}
		if err := dec.DecodeRecord(state, r); err != nil {
			return nil, internal(op, fmt.Errorf("record %d: %w", r.ID, err))
		}
		out = append(out, r)
	}
	return out, internal(op, rows.Err())
}

func (s *Store) recordsAfter(ctx context.Context, kind string, after int64, limit int) ([]*nhisync.Record, error) {
	var page []*nhisync.Record
	gen := s.links.loaded() // before the read's snapshot
	err := s.read(ctx, func(tx *sql.Tx) error {
		where, args := `id > ? ORDER BY id LIMIT ?`, []any{after, limit}
		if kind != "" {
			// +kind keeps SQLite walking the table in ID order rather
			// than the (kind, match_key) index, which would sort the
			// whole kind for every page.
			where, args = `+kind = ? AND `+where, append([]any{kind}, args...)
		}
		byID, err := s.loadRecords(ctx, tx, gen, `id IN (SELECT id FROM records WHERE `+where+`)`, args...)
		if err != nil {
			return err
		}
		page = make([]*nhisync.Record, 0, len(byID))
		for _, r := range byID {
			page = append(page, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortRecords(page)
	return page, nil
}

func sortRecords(rs []*nhisync.Record) {
	slices.SortFunc(rs, func(a, b *nhisync.Record) int { return cmp.Compare(a.ID, b.ID) })
}

// read runs fn in a read-only transaction on a reader: one snapshot of
// the database.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return readTx(ctx, s.r, fn)
}

// readTx runs fn in a read-only transaction on db's connection (on the
// writer's, a deferred one: it begins after the commit in flight, if any).
//
// forCommitReads: LoadRecords of records a pass commits next
// (nhisync.ForCommit) reads on a reader, like any load, beside the pass's
// commit in flight; it maps the store file into the writer's connection
// (writermap.go), through which the commits that rewrite those records
// then read their pages where the kernel caches them. Those loads used to
// read on the writer's connection, after the commit in flight, so that
// the commits found the pages in its page cache (modernc.org/sqlite is
// built with SQLITE_ENABLE_MEMORY_MANAGEMENT: the process's page caches
// share one LRU list, and the readers' scans left the idle writer's cache
// empty); but then the pass's loads and its commits took turns on one
// connection. With the map the commits read no page twice from the file,
// and a pass's next loads (engine recLoader) run while it commits: a 1M
// drift pass alone decided in 2.3-2.8 s instead of 2.6-2.8 (medians 2.4
// and 2.6; README, Performance).
func readTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// loadRecords loads the records selected by where (a condition on the
// records table) with their links and open work, keyed by ID.
//
// gen is the link log's number (linkLog.loaded) taken before tx's
// snapshot began, kept with the links' heads.
func (s *Store) loadRecords(ctx context.Context, tx *sql.Tx, gen uint64, where string, args ...any) (map[int64]*nhisync.Record, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, kind, match_key, key, state FROM records WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byID := map[int64]*nhisync.Record{}
	ids := make([]int64, 0, 16)
	var state sql.RawBytes
	var dec decoder
	for rows.Next() {
		r := &nhisync.Record{}
		if err := rows.Scan(&r.ID, &r.Kind, &r.MatchKey, &r.Key, &state); err != nil {
			return nil, err
		}
		if err := dec.DecodeRecord(state, r); err != nil {
			return nil, fmt.Errorf("record %d: %w", r.ID, err)
		}
		byID[r.ID] = r
		ids = append(ids, r.ID)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(ids) == 0 {
		return byID, nil
	}
	idList := string(appendIDs(nil, ids))
	// +status: look items up by record (few), not by status (many open).
	const inIDs = `record_id IN (SELECT value FROM json_each(?))`

	err = s.queryStoredLinks(ctx, tx, gen, recordLinksSQL, []any{idList}, func(l *nhisync.Link) error {
		if r := byID[l.RecordID]; r != nil {
			r.Links = append(r.Links, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = queryItems(ctx, tx, `SELECT data FROM conflicts WHERE `+inIDs+` AND +status = 'open' ORDER BY id`, []any{idList}, func(c *nhisync.Conflict) error {
		if r := byID[c.RecordID]; r != nil {
			r.Conflicts = append(r.Conflicts, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = queryItems(ctx, tx, `SELECT data FROM quarantine WHERE `+inIDs+` AND +status = 'open' ORDER BY id`, []any{idList}, func(q *nhisync.QuarantineItem) error {
		if r := byID[q.RecordID]; r != nil {
			r.Quarantine = append(r.Quarantine, q)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = queryItems(ctx, tx, `SELECT data FROM approvals WHERE `+inIDs+` AND +status <> 'superseded' ORDER BY id`, []any{idList}, func(a *nhisync.Approval) error {
		if r := byID[a.RecordID]; r != nil {
			r.Approvals = append(r.Approvals, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = queryItems(ctx, tx, `SELECT data FROM outbox WHERE `+inIDs+` ORDER BY id`, []any{idList}, func(w *nhisync.OutboxWrite) error {
		if r := byID[w.RecordID]; r != nil {
			r.Outbox = append(r.Outbox, w)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return byID, nil
}
