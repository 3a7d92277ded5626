package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nhisync/nhisync"
)

// Outbox claims: each queued write carries the claim that holds it
// (claim_token, claim_holder, claim_until; token 0 for none). SQLite has
// one writer at a time, so a claim is one write transaction: it checks the
// request's fence and the lease it yields to, and marks the due rows no
// live claim holds. Processes sharing the file (a CLI command next to
// `serve`) so never send one write twice.
//
// The claim's updates are UPDATE OR FAIL: they can break no constraint,
// and saying so spares SQLite the statement journal it otherwise keeps, a
// copy of every page an UPDATE of many rows inside a transaction changes,
// in case the statement alone must be undone (an error rolls the whole
// transaction back here anyway).

// claimPickSQL picks the writes a claim takes: system ?4's ready writes
// (status ?5) due at ?6 and not under a live claim at ?7, the first limit
// (all when negative) in next_at, id order. By outbox_system, the system's
// ready writes in that order: a claim reads no other system's writes
// (migration 00012), and sorts nothing (the index's entries end with the
// rowid, the id).
//
// The limit is written into the statement, not bound: SQLite checks a
// bound LIMIT to be an integer as the statement runs, a check that may
// abort it, and so keeps a statement journal for the claim's UPDATE, a
// copy of every outbox page it changes (at 300k NHIs a third of the
// claims' CPU). A limit is one of a few values (a drain's claimRows, or
// none), so the statements stay few.
func claimPickSQL(limit int64) string {
	return `SELECT id FROM outbox INDEXED BY outbox_system
	WHERE system = ?4 AND status = ?5 AND next_at <= ?6 AND (claim_token = 0 OR claim_until <= ?7)
	ORDER BY next_at, id LIMIT ` + strconv.FormatInt(limit, 10)
}

// ClaimOutbox claims the due ready writes of req.System that no live claim
// holds (see nhisync.ClaimRequest).
func (s *Store) ClaimOutbox(ctx context.Context, req nhisync.ClaimRequest) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	const op = "sqlite.ClaimOutbox"
	if req.System == "" || req.Holder == "" || req.TTL <= 0 {
		return nil, nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "an outbox claim needs a system, a holder and a positive duration"}
	}
	due := req.Due
	if due.IsZero() {
		due = req.Now
	}
	limit := int64(-1)
	if req.Limit > 0 {
		limit = int64(req.Limit)
	}
	if err := s.unsyncedErr(op); err != nil {
		return nil, nil, err
	}
	c := &nhisync.Claim{Holder: req.Holder, Until: req.Now.Add(req.TTL)}
	var out []*nhisync.OutboxWrite
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := checkFence(ctx, tx, req.Fence); err != nil {
			return err
		}
		if err := yieldTo(ctx, tx, req.Yield, req.Holder, req.Now); err != nil {
			return err
		}
		// A bulk window's writes leave only once it is synced (bulk.go).
		if marked, err := windowMarked(ctx, tx); err != nil || marked {
			return cmp.Or(err, markedErr())
		}
		if err := tx.QueryRowContext(ctx, `UPDATE ids SET next = next + 1 WHERE name = 'claim' RETURNING next - 1`).Scan(&c.Token); err != nil {
			return err
		}
		until := formatTime(c.Until)
		if _, err := tx.ExecContext(ctx, `UPDATE OR FAIL outbox SET claim_token = ?1, claim_holder = ?2, claim_until = ?3
			WHERE id IN (`+claimPickSQL(limit)+`)`,
			c.Token, req.Holder, until, req.System, nhisync.OutboxReady, formatTime(due), formatTime(req.Now)); err != nil {
			return err
		}
		return queryItems(ctx, tx, `SELECT data FROM outbox INDEXED BY outbox_claimed WHERE claim_until = ?1 AND claim_token = ?2 AND claim_token <> 0`,
			[]any{until, c.Token},
			func(w *nhisync.OutboxWrite) error {
				out = append(out, w)
				return nil
			})
	})
	if err != nil {
		return nil, nil, internal(op, err)
	}
	slices.SortFunc(out, func(a, b *nhisync.OutboxWrite) int {
		if c := a.NextAt.Compare(b.NextAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, w := range out {
		c.IDs = append(c.IDs, w.ID)
	}
	return c, out, nil
}

// writeTx runs fn in one write transaction, committed when fn returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// yieldTo fails (ECONFLICT) while a holder other than holder holds the
// named lease unexpired at now.
func yieldTo(ctx context.Context, tx *sql.Tx, lease, holder string, now time.Time) error {
	if lease == "" {
		return nil
	}
	var h, expires string
	err := tx.QueryRowContext(ctx, `SELECT holder, expires FROM leases WHERE name = ?`, lease).Scan(&h, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if h != "" && h != holder && expires > formatTime(now) {
		return &nhisync.Error{Code: nhisync.ECONFLICT, Message: fmt.Sprintf(
			"%s holds the %s lease: it sends the queued writes itself; nothing was claimed", h, lease)}
	}
	return nil
}

// RenewClaim extends c's hold on ids to now+ttl; ECONFLICT, renewing
// nothing, unless c still holds every one of them.
func (s *Store) RenewClaim(ctx context.Context, c *nhisync.Claim, ids []int64, now time.Time, ttl time.Duration) error {
	const op = "sqlite.RenewClaim"
	if c == nil || c.Token == 0 || ttl <= 0 {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "renewing an outbox claim needs a claim from ClaimOutbox and a positive duration"}
	}
	ids = nhisync.DistinctIDs(ids)
	until := now.Add(ttl)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE OR FAIL outbox SET claim_until = ? WHERE id IN (SELECT value FROM json_each(?)) AND claim_token = ?`,
			formatTime(until), string(appendIDs(nil, ids)), c.Token)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if int(n) != len(ids) {
			return nhisync.ClaimLost(op, len(ids)-int(n))
		}
		return nil
	})
	if err != nil {
		return internal(op, err)
	}
	c.Until = until
	return nil
}

// ReleaseClaim returns the writes c still holds to the queue.
func (s *Store) ReleaseClaim(ctx context.Context, c *nhisync.Claim) error {
	if c == nil || c.Token == 0 || len(c.IDs) == 0 {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE outbox SET claim_token = 0, claim_holder = '', claim_until = '' WHERE id IN (SELECT value FROM json_each(?)) AND claim_token = ?`,
		string(appendIDs(nil, c.IDs)), c.Token); err != nil {
		return internal("sqlite.ReleaseClaim", err)
	}
	return nil
}

// ReleaseClaims returns every write holder's claims hold to the queue.
func (s *Store) ReleaseClaims(ctx context.Context, holder string) error {
	if holder == "" {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE outbox SET claim_token = 0, claim_holder = '', claim_until = '' WHERE claim_token <> 0 AND claim_holder = ?`, holder); err != nil {
		return internal("sqlite.ReleaseClaims", err)
	}
	return nil
}

// OutboxClaims returns the holders of live claims at now, each with when
// its last claim expires.
func (s *Store) OutboxClaims(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	const op = "sqlite.OutboxClaims"
	rows, err := s.r.QueryContext(ctx, `SELECT claim_holder, max(claim_until) FROM outbox WHERE claim_token <> 0 AND claim_until > ? GROUP BY claim_holder`, formatTime(now))
	if err != nil {
		return nil, internal(op, err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var holder, until string
		if err := rows.Scan(&holder, &until); err != nil {
			return nil, internal(op, err)
		}
		t, err := parseTime(until)
		if err != nil {
			return nil, internal(op, err)
		}
		out[holder] = t
	}
	if err := rows.Err(); err != nil {
		return nil, internal(op, err)
	}
	return out, nil
}

// checkClaim fails, inside a commit's transaction, unless the batch's
// claim still holds every outbox write of the batch it names.
func checkClaim(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	ids := b.ClaimedIDs()
	if len(ids) == 0 {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE id IN (SELECT value FROM json_each(?)) AND claim_token = ?`,
		string(appendIDs(nil, ids)), b.Claim.Token).Scan(&n); err != nil {
		return err
	}
	if n != len(ids) {
		return nhisync.ClaimLost("", len(ids)-n)
	}
	return nil
}
