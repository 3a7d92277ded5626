package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
)

// auditPage is how many entries ScanAudit reads per query.
var auditPage int64 = 5000

// AuditHead returns the number of audit entries and the hash of the last
// one ("" for an empty log). Storage failures are EINTERNAL.
func (s *Store) AuditHead(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := s.pool.QueryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", internal("postgres.AuditHead", err)
	}
	return seq, hash, nil
}

// ScanAudit streams the entries with from <= seq < to (to 0: to the end)
// in order, each decoded from its stored leaf bytes with the stored seq,
// record id and hash, a page at a time (fn may use the store). An error
// from fn stops the scan and is returned as is.
func (s *Store) ScanAudit(ctx context.Context, from, to int64, fn func(e *nhisync.AuditEntry, leaf []byte) error) error {
	const op = "postgres.ScanAudit"
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
		err := queryAudit(ctx, s.pool, `SELECT seq, record_id, leaf, hash FROM audit WHERE seq >= $1 AND seq < $2 ORDER BY seq`, []any{next, end},
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

// AuditByRecord returns every entry about a record, in order.
func (s *Store) AuditByRecord(ctx context.Context, recordID int64) ([]*nhisync.AuditEntry, error) {
	var out []*nhisync.AuditEntry
	err := queryAudit(ctx, s.pool, `SELECT seq, record_id, leaf, hash FROM audit WHERE record_id = $1 ORDER BY seq`, []any{recordID},
		func(e *nhisync.AuditEntry, _ []byte) error {
			out = append(out, e)
			return nil
		})
	if err != nil {
		return nil, internal("postgres.AuditByRecord", err)
	}
	return out, nil
}

// queryAudit runs a query selecting seq, record_id, leaf and hash, and
// passes each decoded entry with its leaf to fn.
func queryAudit(ctx context.Context, q querier, query string, args []any, fn func(*nhisync.AuditEntry, []byte) error) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var recordID *int64
		var leaf []byte
		var hash string
		if err := rows.Scan(&seq, &recordID, &leaf, &hash); err != nil {
			return err
		}
		e := &nhisync.AuditEntry{}
		if err := json.Unmarshal(leaf, e); err != nil {
			return fmt.Errorf("audit entry %d: leaf does not decode: %w", seq, err)
		}
		e.Seq, e.RecordID, e.Hash = seq, 0, hash
		if recordID != nil {
			e.RecordID = *recordID
		}
		if err := fn(e, leaf); err != nil {
			return err
		}
	}
	return rows.Err()
}

// PutCheckpoint stores a signed tree head. Storing one again for the same
// size replaces its note and time; a different root for a size already
// checkpointed is refused with ECONFLICT. It returns EINVALID for a size
// below 1.
func (s *Store) PutCheckpoint(ctx context.Context, c *nhisync.Checkpoint) error {
	const op = "postgres.PutCheckpoint"
	if c == nil || c.Size < 1 {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "a checkpoint needs a tree size of at least 1"}
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO checkpoints (size, root, note, at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (size) DO UPDATE SET note = excluded.note, at = excluded.at WHERE checkpoints.root = excluded.root`,
		c.Size, nonNil(c.Root), nonNil(c.Note), formatTime(c.At))
	if err != nil {
		return internal(op, err)
	}
	if tag.RowsAffected() == 0 {
		return &nhisync.Error{Code: nhisync.ECONFLICT, Op: op, Message: fmt.Sprintf("a checkpoint of size %d with another root hash is already stored", c.Size)}
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// LatestCheckpoint returns the checkpoint of the largest tree size, with
// its tree state, or nil when there is none.
func (s *Store) LatestCheckpoint(ctx context.Context) (*nhisync.Checkpoint, error) {
	c, err := latestCheckpoint(ctx, s.pool)
	if err != nil {
		return nil, internal("postgres.LatestCheckpoint", err)
	}
	return c, nil
}

// checkpointPage is how many checkpoints ScanCheckpoints reads per query.
var checkpointPage = 1000

// ScanCheckpoints streams every stored checkpoint in order of tree size,
// a page at a time. An error from fn stops the scan and is returned as is.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(*nhisync.Checkpoint) error) error {
	const op = "postgres.ScanCheckpoints"
	after := int64(0)
	for {
		var page []*nhisync.Checkpoint
		err := func() error {
			rows, err := s.pool.Query(ctx, `SELECT size, root, note, at FROM checkpoints WHERE size > $1 ORDER BY size LIMIT $2`, after, checkpointPage)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				c := &nhisync.Checkpoint{}
				var at string
				if err := rows.Scan(&c.Size, &c.Root, &c.Note, &at); err != nil {
					return err
				}
				if err := setTime(&c.At, at); err != nil {
					return err
				}
				page = append(page, c)
			}
			return rows.Err()
		}()
		if err != nil {
			return internal(op, err)
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < checkpointPage {
			return nil
		}
		after = page[len(page)-1].Size
	}
}

// SetNotary makes every later Commit that appends audit entries sign a
// checkpoint of them in the same transaction (nil: unsigned).
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

// appendAudit seals the batch's entries after the last stored one,
// appends them and, with a notary, signs and stores the checkpoint that
// covers them, inside the commit's transaction, which holds the commit
// lock: the head read here cannot move before it commits. Entry times
// never run backwards, and with a notary the log's head must be exactly
// what the latest checkpoint covers (as in the SQLite store).
func appendAudit(ctx context.Context, tx pgx.Tx, b *nhisync.Batch, notary nhisync.Notary) (*nhisync.Checkpoint, error) {
	if len(b.Audit) == 0 {
		return nil, nil
	}
	seq, prev, last, err := auditTail(ctx, tx)
	if err != nil {
		return nil, err
	}
	var latest *nhisync.Checkpoint
	var leaves [][]byte
	if notary != nil {
		if latest, err = latestCheckpoint(ctx, tx); err != nil {
			return nil, err
		}
		if err := nhisync.CoveredHead(latest, seq, prev); err != nil {
			return nil, err
		}
		if latest != nil && latest.State == nil {
			if leaves, err = leafHashes(ctx, tx, seq); err != nil {
				return nil, err
			}
		}
	}
	for start := 0; start < len(b.Audit); start += rowsPerStatement {
		part := b.Audit[start:min(start+rowsPerStatement, len(b.Audit))]
		seqs := make([]int64, len(part))
		recs := make([]*int64, len(part))
		leafs := make([][]byte, len(part))
		hashes := make([]string, len(part))
		for j, e := range part {
			if e.Time.Before(last) {
				e.Time = last
			}
			last = e.Time
			seq++
			e.Seq = seq
			leaf, h := b.SealAudit(start+j, prev)
			prev = e.Hash
			if notary != nil {
				leaves = append(leaves, h)
			}
			seqs[j], leafs[j], hashes[j] = e.Seq, leaf, e.Hash
			if e.RecordID != 0 {
				id := e.RecordID
				recs[j] = &id
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit (seq, record_id, leaf, hash)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[]) ORDER BY 1`,
			seqs, recs, leafs, hashes); err != nil {
			return nil, err
		}
	}
	if notary == nil {
		return nil, nil
	}
	cp, err := notary.Extend(latest, leaves)
	if err != nil {
		return nil, err
	}
	cp.LastHash = prev
	if cp.Size != seq {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Message: fmt.Sprintf("the notary signed a tree of %d entries, not %d", cp.Size, seq)}
	}
	_, err = tx.Exec(ctx, `INSERT INTO checkpoints (size, root, note, at, state, last_hash) VALUES ($1, $2, $3, $4, $5, $6)`,
		cp.Size, nonNil(cp.Root), nonNil(cp.Note), formatTime(cp.At), cp.State, cp.LastHash)
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// auditTail returns the last entry's seq, hash and time (zeros for an
// empty log).
func auditTail(ctx context.Context, q querier) (int64, string, time.Time, error) {
	var seq int64
	var hash string
	var leaf []byte
	err := q.QueryRow(ctx, `SELECT seq, hash, leaf FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash, &leaf)
	if errors.Is(err, pgx.ErrNoRows) {
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

// leafHashes returns the RFC 6962 leaf hashes of entries 1 to n.
func leafHashes(ctx context.Context, q querier, n int64) ([][]byte, error) {
	rows, err := q.Query(ctx, `SELECT leaf FROM audit WHERE seq <= $1 ORDER BY seq`, n)
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
	c := &nhisync.Checkpoint{}
	var at string
	var lastHash *string
	err := q.QueryRow(ctx, `SELECT size, root, note, at, state, last_hash FROM checkpoints ORDER BY size DESC LIMIT 1`).
		Scan(&c.Size, &c.Root, &c.Note, &at, &c.State, &lastHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if lastHash != nil {
		c.LastHash = *lastHash
	}
	if err := setTime(&c.At, at); err != nil {
		return nil, err
	}
	return c, nil
}
