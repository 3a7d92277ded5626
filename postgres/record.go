package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
)

// Scans read a page at a time and hold no read open while fn runs, so fn
// may use the store (even commit). They are variables so tests can make
// pages tiny.
var (
	scanPage = 500
	headPage = 10000
	linkPage = 1000
)

// ScanRecordHeads streams the head of every golden record in ID order,
// a page at a time. An error from fn stops the scan and is returned as is.
func (s *Store) ScanRecordHeads(ctx context.Context, fn func(nhisync.RecordHead) error) error {
	const op = "postgres.ScanRecordHeads"
	page := make([]nhisync.RecordHead, 0, headPage)
	var after int64
	for {
		page = page[:0]
		err := func() error {
			rows, err := s.pool.Query(ctx, `SELECT id, kind, match_key FROM records WHERE id > $1 ORDER BY id LIMIT $2`, after, headPage)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var h nhisync.RecordHead
				if err := rows.Scan(&h.ID, &h.Kind, &h.MatchKey); err != nil {
					return err
				}
				page = append(page, h)
			}
			return rows.Err()
		}()
		if err != nil {
			return internal(op, err)
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
// and each once, with their links, open conflicts and quarantine items,
// approvals that are not superseded and every outbox write, from one
// snapshot. Missing IDs are left out.
func (s *Store) LoadRecords(ctx context.Context, ids []int64) ([]*nhisync.Record, error) {
	const op = "postgres.LoadRecords"
	if len(ids) == 0 {
		return nil, nil
	}
	var out []*nhisync.Record
	err := s.read(ctx, func(tx pgx.Tx) error {
		byID, err := loadRecords(ctx, tx, `id = ANY($1)`, ids)
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
// by ID; missing IDs are left out.
func (s *Store) RecordKeys(ctx context.Context, ids []int64) (map[int64]string, error) {
	const op = "postgres.RecordKeys"
	out := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, key FROM records WHERE id = ANY($1)`, ids)
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
// out.
func (s *Store) RecordIDsByKey(ctx context.Context, kind string, keys []string) (map[string]int64, error) {
	const op = "postgres.RecordIDsByKey"
	out := make(map[string]int64, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT match_key, id FROM records WHERE kind = $1 AND match_key = ANY($2)`, kind, keys)
	if err != nil {
		return nil, internal(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var id int64
		if err := rows.Scan(&key, &id); err != nil {
			return nil, internal(op, err)
		}
		out[key] = id
	}
	if err := rows.Err(); err != nil {
		return nil, internal(op, err)
	}
	return out, nil
}

// CountRecords returns how many records each kind has.
func (s *Store) CountRecords(ctx context.Context) (map[string]int, error) {
	const op = "postgres.CountRecords"
	rows, err := s.pool.Query(ctx, `SELECT kind, count(*) FROM records GROUP BY kind`)
	if err != nil {
		return nil, internal(op, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var kind string
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, internal(op, err)
		}
		out[kind] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, internal(op, err)
	}
	return out, nil
}

// RecordByKey returns the record of kind with the normalized match key,
// loaded as LoadRecords does; ENOTFOUND when there is none.
func (s *Store) RecordByKey(ctx context.Context, kind, matchKey string) (*nhisync.Record, error) {
	const op = "postgres.RecordByKey"
	var r *nhisync.Record
	err := s.read(ctx, func(tx pgx.Tx) error {
		byID, err := loadRecords(ctx, tx, `kind = $1 AND match_key = $2`, kind, matchKey)
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

// ScanRecords streams full records of kind ("" for all) in ID order, a
// page at a time, each page from one snapshot.
func (s *Store) ScanRecords(ctx context.Context, kind string, fn func(*nhisync.Record) error) error {
	const op = "postgres.ScanRecords"
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
// whose ID is above after, in ID order. EINVALID for a limit below 1.
func (s *Store) RecordsAfter(ctx context.Context, kind string, after int64, limit int) ([]*nhisync.Record, error) {
	const op = "postgres.RecordsAfter"
	if limit < 1 {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "a page holds at least one record"}
	}
	page, err := s.recordsAfter(ctx, kind, after, limit)
	return page, internal(op, err)
}

// GoldenAfter is RecordsAfter without links and open work.
func (s *Store) GoldenAfter(ctx context.Context, kind string, after int64, limit int) ([]*nhisync.Record, error) {
	const op = "postgres.GoldenAfter"
	if limit < 1 {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "a page holds at least one record"}
	}
	q, args := `SELECT id, kind, match_key, key, state FROM records WHERE id > $1 ORDER BY id LIMIT $2`, []any{after, limit}
	if kind != "" {
		q, args = `SELECT id, kind, match_key, key, state FROM records WHERE kind = $1 AND id > $2 ORDER BY id LIMIT $3`, []any{kind, after, limit}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, internal(op, err)
	}
	defer rows.Close()
	out := make([]*nhisync.Record, 0, min(limit, 1000))
	var state []byte
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
	err := s.read(ctx, func(tx pgx.Tx) error {
		where, args := `id IN (SELECT id FROM records WHERE id > $1 ORDER BY id LIMIT $2)`, []any{after, limit}
		if kind != "" {
			where, args = `id IN (SELECT id FROM records WHERE kind = $1 AND id > $2 ORDER BY id LIMIT $3)`, []any{kind, after, limit}
		}
		byID, err := loadRecords(ctx, tx, where, args...)
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
	slices.SortFunc(page, func(a, b *nhisync.Record) int { return cmp.Compare(a.ID, b.ID) })
	return page, nil
}

// read runs fn in a read-only REPEATABLE READ transaction: one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(tx)
}

// loadRecords loads the records selected by where (a condition on the
// records table) with their links and open work, keyed by ID.
func loadRecords(ctx context.Context, tx pgx.Tx, where string, args ...any) (map[int64]*nhisync.Record, error) {
	byID := map[int64]*nhisync.Record{}
	ids := make([]int64, 0, 16)
	err := func() error {
		rows, err := tx.Query(ctx, `SELECT id, kind, match_key, key, state FROM records WHERE `+where, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var state []byte
		var dec decoder
		for rows.Next() {
			r := &nhisync.Record{}
			if err := rows.Scan(&r.ID, &r.Kind, &r.MatchKey, &r.Key, &state); err != nil {
				return err
			}
			if err := dec.DecodeRecord(state, r); err != nil {
				return fmt.Errorf("record %d: %w", r.ID, err)
			}
			byID[r.ID] = r
			ids = append(ids, r.ID)
		}
		return rows.Err()
	}()
	if err != nil || len(ids) == 0 {
		return byID, err
	}
	const inIDs = `record_id = ANY($1)`
	err = queryLinks(ctx, tx, `SELECT `+linkCols+` FROM links WHERE `+inIDs+` ORDER BY record_id, system, ext_id`, []any{ids}, func(l *nhisync.Link) error {
		if r := byID[l.RecordID]; r != nil {
			r.Links = append(r.Links, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = queryItems(ctx, tx, `SELECT data FROM conflicts WHERE `+inIDs+` AND status = 'open' ORDER BY id`, []any{ids}, func(c *nhisync.Conflict) error {
		if r := byID[c.RecordID]; r != nil {
			r.Conflicts = append(r.Conflicts, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = queryItems(ctx, tx, `SELECT data FROM quarantine WHERE `+inIDs+` AND status = 'open' ORDER BY id`, []any{ids}, func(q *nhisync.QuarantineItem) error {
		if r := byID[q.RecordID]; r != nil {
			r.Quarantine = append(r.Quarantine, q)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = queryItems(ctx, tx, `SELECT data FROM approvals WHERE `+inIDs+` AND status <> 'superseded' ORDER BY id`, []any{ids}, func(a *nhisync.Approval) error {
		if r := byID[a.RecordID]; r != nil {
			r.Approvals = append(r.Approvals, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = queryItems(ctx, tx, `SELECT data FROM outbox WHERE `+inIDs+` ORDER BY id`, []any{ids}, func(w *nhisync.OutboxWrite) error {
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
