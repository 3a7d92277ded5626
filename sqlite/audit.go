package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

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
		err := queryAudit(ctx, s.r, `SELECT seq, leaf, hash FROM audit WHERE seq >= ? AND seq < ? ORDER BY seq`, []any{next, end},
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
func (s *Store) AuditByRecord(ctx context.Context, recordID int64) ([]*nhisync.AuditEntry, error) {
	var out []*nhisync.AuditEntry
	err := queryAudit(ctx, s.r, `SELECT seq, leaf, hash FROM audit WHERE record_id = ? ORDER BY seq`, []any{recordID},
		func(e *nhisync.AuditEntry, _ []byte) error {
			out = append(out, e)
			return nil
		})
	if err != nil {
		return nil, internal("sqlite.AuditByRecord", err)
	}
	return out, nil
}

// queryAudit runs a query selecting seq, leaf and hash, and passes each
// decoded entry with its leaf to fn.
func queryAudit(ctx context.Context, q querier, query string, args []any, fn func(*nhisync.AuditEntry, []byte) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var leaf []byte
		var hash string
		if err := rows.Scan(&seq, &leaf, &hash); err != nil {
			return err
		}
		e := &nhisync.AuditEntry{}
		if err := json.Unmarshal(leaf, e); err != nil {
			return fmt.Errorf("audit entry %d: leaf does not decode: %w", seq, err)
		}
		e.Hash = hash
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

// LatestCheckpoint returns the checkpoint of the largest tree size, or nil
// when there is none. Storage failures are EINTERNAL.
func (s *Store) LatestCheckpoint(ctx context.Context) (*nhisync.Checkpoint, error) {
	const op = "sqlite.LatestCheckpoint"
	c := &nhisync.Checkpoint{}
	var at string
	err := s.r.QueryRowContext(ctx, `SELECT size, root, note, at FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&c.Size, &c.Root, &c.Note, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err == nil {
		err = setTime(&c.At, at)
	}
	if err != nil {
		return nil, internal(op, err)
	}
	return c, nil
}
