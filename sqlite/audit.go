package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nhisync/nhisync"
)

// auditPage is how many entries ScanAudit reads per query.
var auditPage int64 = 5000

// AuditHead returns the number of audit entries and the hash of the last
// one ("" for an empty log). Storage failures are EINTERNAL.
func (s *Store) AuditHead(ctx context.Context) (int64, string, error) {
	size, hash, err := auditHead(ctx, s.r)
	if err != nil {
		return 0, "", internal("sqlite.AuditHead", err)
	}
	return size, hash, nil
}

// auditHead reads the last entry's seq (which is the log's size: seqs run
// from 1 without gaps) and hash.
func auditHead(ctx context.Context, q querier) (int64, string, error) {
	var seq int64
	var hash string
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, hash, err
}

// ScanAudit streams the entries with from <= seq < to (to 0: to the end) in
// order. Each entry is decoded from the leaf bytes stored for it, and its
// Hash is the stored hash, so a verifier can recompute one and compare it
// with the other. An error from fn stops the scan and is returned as is;
// a leaf that does not decode, or a storage failure, is EINTERNAL.
func (s *Store) ScanAudit(ctx context.Context, from, to int64, fn func(e *nhisync.AuditEntry, leaf []byte) error) error {
	const op = "sqlite.ScanAudit"
	next := max(from, 1)
	for to <= 0 || next < to {
		type row struct {
			e    *nhisync.AuditEntry
			leaf []byte
		}
		var page []row
		end := next + auditPage
		if to > 0 {
			end = min(end, to)
		}
		err := queryAudit(ctx, s.r, `SELECT seq, record_id, leaf, hash FROM audit WHERE seq >= ? AND seq < ? ORDER BY seq`, []any{next, end},
			func(e *nhisync.AuditEntry, leaf []byte) error {
				page = append(page, row{e, leaf})
				return nil
			})
		if err != nil {
			return internal(op, err)
		}
		for _, r := range page {
			if err := fn(r.e, r.leaf); err != nil {
				return err
			}
		}
		if len(page) < int(end-next) {
			return nil
		}
		next = end
	}
	return nil
}

// AuditByRecord returns every entry about a record, in order. Storage
// failures are EINTERNAL.
//
// Its index (audit_record) stays inside the bulk window, unlike records'
// match-key index: a first pass appends entries in record order, so each
// goes on the index's last leaf, and dropping the index for the window
// saved its commits nothing measurable (BenchmarkBulkCommit's
// own-cpu-ns/commit 6.16 ms with it, 6.11 without, medians of 6 pairs),
// while building it when the window closes reads the whole log, about a
// kilobyte an entry: 92 ms of CPU per 100,000 entries, over a second at
// 1M NHIs, on the thread EndBulk holds up.
func (s *Store) AuditByRecord(ctx context.Context, recordID int64) ([]*nhisync.AuditEntry, error) {
	var out []*nhisync.AuditEntry
	err := queryAudit(ctx, s.r, `SELECT seq, record_id, leaf, hash FROM audit WHERE record_id = ? ORDER BY seq`, []any{recordID},
		func(e *nhisync.AuditEntry, _ []byte) error {
			out = append(out, e)
			return nil
		})
	if err != nil {
		return nil, internal("sqlite.AuditByRecord", err)
	}
	return out, nil
}

// queryAudit runs a query selecting seq, record_id, leaf and hash, and passes each
// decoded entry with its leaf to fn.
func queryAudit(ctx context.Context, q querier, query string, args []any, fn func(*nhisync.AuditEntry, []byte) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var recordID sql.NullInt64
		var leaf []byte
		var hash string
		if err := rows.Scan(&seq, &recordID, &leaf, &hash); err != nil {
			return err
		}
		e := &nhisync.AuditEntry{}
		if err := json.Unmarshal(leaf, e); err != nil {
			return fmt.Errorf("audit entry %d: leaf does not decode: %w", seq, err)
		}
		// The indexed columns are what queries select by: hand them back
		// as stored, so a verifier sees one that disagrees with the leaf.
		e.Seq, e.RecordID, e.Hash = seq, recordID.Int64, hash
		if err := fn(e, leaf); err != nil {
			return err
		}
	}
	return rows.Err()
}

// PutCheckpoint stores a signed tree head. Storing one again for the same
// size replaces its note and time; a different root for a size already
// checkpointed is refused with ECONFLICT (the log would have forked). It
// returns EINVALID for a size below 1 and EINTERNAL for storage failures.
func (s *Store) PutCheckpoint(ctx context.Context, c *nhisync.Checkpoint) error {
	const op = "sqlite.PutCheckpoint"
	if c == nil || c.Size < 1 {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "a checkpoint needs a tree size of at least 1"}
	}
	root := c.Root
	if root == nil {
		root = []byte{}
	}
	note := c.Note
	if note == nil {
		note = []byte{}
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO checkpoints (size, root, note, at) VALUES (?, ?, ?, ?)
		ON CONFLICT (size) DO UPDATE SET note = excluded.note, at = excluded.at WHERE root = excluded.root`,
		c.Size, root, note, formatTime(c.At))
	if err != nil {
		return internal(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(op, err)
	} else if n == 0 {
		return &nhisync.Error{Code: nhisync.ECONFLICT, Op: op, Message: fmt.Sprintf("a checkpoint of size %d with another root hash is already stored", c.Size)}
	}
	return nil
}

// LatestCheckpoint returns the checkpoint of the largest tree size, with
// its tree state, or nil when there is none. While a bulk window's
// commits are not synced to disk it returns the last checkpoint signed
// before the window (bulk.go): a power loss could take the window's
// back, and a checkpoint handed out must stay true. Storage failures are
// EINTERNAL.
func (s *Store) LatestCheckpoint(ctx context.Context) (*nhisync.Checkpoint, error) {
	c, err := queryCheckpoint(ctx, s.r, `WHERE `+syncedOnly)
	if err != nil {
		return nil, internal("sqlite.LatestCheckpoint", err)
	}
	return c, nil
}

// SetNotary makes every later Commit that appends audit entries sign a
// checkpoint of them in the same transaction (nil: entries are appended
// unsigned, as tests of other layers do).
func (s *Store) SetNotary(n nhisync.Notary) {
	s.notaryMu.Lock()
	defer s.notaryMu.Unlock()
	s.notary = n
}

func (s *Store) getNotary() nhisync.Notary {
	s.notaryMu.Lock()
	defer s.notaryMu.Unlock()
	return s.notary
}

// auditTail returns the last entry's seq, hash and time (zeros for an
// empty log).
func auditTail(ctx context.Context, q querier) (int64, string, time.Time, error) {
	var seq int64
	var hash string
	var leaf []byte
	err := q.QueryRowContext(ctx, `SELECT seq, hash, leaf FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash, &leaf)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", time.Time{}, nil
	}
	if err != nil {
		return 0, "", time.Time{}, err
	}
	at, err := nhisync.LeafTime(leaf)
	if err != nil {
		return 0, "", time.Time{}, fmt.Errorf("audit entry %d: %w", seq, err)
	}
	return seq, hash, at, nil
}

// leafHashes returns the RFC 6962 leaf hashes of entries 1 to n, computed
// from their stored leaf bytes.
func leafHashes(ctx context.Context, q querier, n int64) ([][]byte, error) {
	rows, err := q.QueryContext(ctx, `SELECT leaf FROM audit WHERE seq <= ? ORDER BY seq`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([][]byte, 0, n)
	for rows.Next() {
		var leaf []byte
		if err := rows.Scan(&leaf); err != nil {
			return nil, err
		}
		out = append(out, nhisync.LeafHash(leaf))
	}
	return out, rows.Err()
}

// latestCheckpoint returns the checkpoint of the largest size with its
// tree state, nil when there is none.
func latestCheckpoint(ctx context.Context, q querier) (*nhisync.Checkpoint, error) {
	return queryCheckpoint(ctx, q, "")
}

// queryCheckpoint returns the checkpoint of the largest size that where
// (a WHERE clause, or "") keeps, with its tree state; nil for none.
func queryCheckpoint(ctx context.Context, q querier, where string) (*nhisync.Checkpoint, error) {
	c := &nhisync.Checkpoint{}
	var at string
	var lastHash sql.NullString
	err := q.QueryRowContext(ctx, `SELECT size, root, note, at, state, last_hash FROM checkpoints `+where+` ORDER BY size DESC LIMIT 1`).
		Scan(&c.Size, &c.Root, &c.Note, &at, &c.State, &lastHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.LastHash = lastHash.String
	if err := setTime(&c.At, at); err != nil {
		return nil, err
	}
	return c, nil
}
