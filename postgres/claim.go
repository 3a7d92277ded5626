package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
)

// Outbox claims: each queued write carries the claim that holds it
// (claim_token, claim_holder, claim_until; token 0 for none). A claim is
// taken by one UPDATE over the rows a SELECT … FOR UPDATE SKIP LOCKED
// picked, so concurrent senders on any number of replicas pass over each
// other's rows instead of waiting for them, and a row is held by one live
// claim at a time.

// claimSQL claims a system's due ready writes ($1 system, $2 status, $3
// due, $4 now, $5 limit or NULL for all; $6 token, $7 holder, $8 until).
// The writes are picked by outbox_system (system, status, next_at, id),
// in the order they are taken, reading only the system's due writes and
// none of the other systems' (migration 00003), up to the limit; the
// UPDATE finds them by id in the primary key. Joined to the picked rows
// (UPDATE … FROM picked) instead, it was planned as a hash join over a
// scan of the whole outbox, every write of every system read again by
// each claim.
const claimSQL = `UPDATE outbox SET claim_token = $6, claim_holder = $7, claim_until = $8
	WHERE id = ANY(ARRAY(
		SELECT id FROM outbox
		WHERE system = $1 AND status = $2 AND next_at <= $3 AND (claim_token = 0 OR claim_until <= $4)
		ORDER BY next_at, id LIMIT $5
		FOR UPDATE SKIP LOCKED))
	RETURNING data`

// ClaimOutbox claims the due ready writes of req.System that no live claim
// holds (see nhisync.ClaimRequest), in one transaction that checks the
// request's fence and the lease it yields to first.
func (s *Store) ClaimOutbox(ctx context.Context, req nhisync.ClaimRequest) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	const op = "postgres.ClaimOutbox"
	if req.System == "" || req.Holder == "" || req.TTL <= 0 {
		return nil, nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "an outbox claim needs a system, a holder and a positive duration"}
	}
	due := req.Due
	if due.IsZero() {
		due = req.Now
	}
	var token int64
	if err := s.pool.QueryRow(ctx, `UPDATE ids SET next = next + 1 WHERE name = 'claim' RETURNING next - 1`).Scan(&token); err != nil {
		return nil, nil, internal(op, err)
	}
	c := &nhisync.Claim{Holder: req.Holder, Token: token, Until: req.Now.Add(req.TTL)}
	var limit *int64
	if req.Limit > 0 {
		n := int64(req.Limit)
		limit = &n
	}
	var out []*nhisync.OutboxWrite
	for attempt := 1; ; attempt++ {
		out = nil
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := checkFence(ctx, tx, req.Fence); err != nil {
				return err
			}
			if err := yieldTo(ctx, tx, req.Yield, req.Holder, req.Now); err != nil {
				return err
			}
			return queryItems(ctx, tx, claimSQL,
				[]any{req.System, nhisync.OutboxReady, formatTime(due), formatTime(req.Now), limit, token, req.Holder, formatTime(c.Until)},
				func(w *nhisync.OutboxWrite) error {
					out = append(out, w)
					return nil
				})
		})
		if err == nil {
			break
		}
		if !retryable(err) || attempt == commitAttempts {
			return nil, nil, internal(op, err)
		}
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

// yieldTo fails (ECONFLICT) while a holder other than holder holds the
// named lease unexpired at now. The lease row is made to exist and locked
// FOR SHARE until the transaction ends: a process taking the lease waits
// for this claim to commit, and then sees its writes claimed.
func yieldTo(ctx context.Context, tx pgx.Tx, lease, holder string, now time.Time) error {
	if lease == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO leases (name, holder, expires, epoch) VALUES ($1, '', '', 0) ON CONFLICT (name) DO NOTHING`, lease); err != nil {
		return err
	}
	var h, expires string
	if err := tx.QueryRow(ctx, `SELECT holder, expires FROM leases WHERE name = $1 FOR SHARE`, lease).Scan(&h, &expires); err != nil {
		return err
	}
	if h != "" && h != holder && expires > formatTime(now) {
		return busyLease(lease, h)
	}
	return nil
}

// busyLease is the error of a sender giving way to a lease's holder.
func busyLease(lease, holder string) error {
	return &nhisync.Error{Code: nhisync.ECONFLICT, Message: fmt.Sprintf(
		"%s holds the %s lease: it sends the queued writes itself; nothing was claimed", holder, lease)}
}

// RenewClaim extends c's hold on ids to now+ttl; ECONFLICT, renewing
// nothing, unless c still holds every one of them.
func (s *Store) RenewClaim(ctx context.Context, c *nhisync.Claim, ids []int64, now time.Time, ttl time.Duration) error {
	const op = "postgres.RenewClaim"
	if c == nil || c.Token == 0 || ttl <= 0 {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "renewing an outbox claim needs a claim from ClaimOutbox and a positive duration"}
	}
	ids = nhisync.DistinctIDs(ids)
	until := now.Add(ttl)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET claim_until = $1 WHERE id = ANY($2) AND claim_token = $3`, formatTime(until), ids, c.Token)
		if err != nil {
			return err
		}
		if int(tag.RowsAffected()) != len(ids) {
			return nhisync.ClaimLost(op, len(ids)-int(tag.RowsAffected()))
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
	if _, err := s.pool.Exec(ctx, `UPDATE outbox SET claim_token = 0, claim_holder = '', claim_until = '' WHERE id = ANY($1) AND claim_token = $2`, c.IDs, c.Token); err != nil {
		return internal("postgres.ReleaseClaim", err)
	}
	return nil
}

// ReleaseClaims returns every write holder's claims hold to the queue.
func (s *Store) ReleaseClaims(ctx context.Context, holder string) error {
	if holder == "" {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE outbox SET claim_token = 0, claim_holder = '', claim_until = '' WHERE claim_token <> 0 AND claim_holder = $1`, holder); err != nil {
		return internal("postgres.ReleaseClaims", err)
	}
	return nil
}

// OutboxClaims returns the holders of live claims at now, each with when
// its last claim expires.
func (s *Store) OutboxClaims(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	const op = "postgres.OutboxClaims"
	rows, err := s.pool.Query(ctx, `SELECT claim_holder, max(claim_until) FROM outbox WHERE claim_token <> 0 AND claim_until > $1 GROUP BY claim_holder`, formatTime(now))
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
	return out, internal(op, rows.Err())
}

// checkClaim fails, inside a commit's transaction, unless the batch's
// claim still holds every outbox write of the batch it names; those rows
// stay locked until the commit ends, so no claim takes them meanwhile.
func checkClaim(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	ids := b.ClaimedIDs()
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM outbox WHERE id = ANY($1) AND claim_token = $2 FOR UPDATE`, ids, b.Claim.Token)
	if err != nil {
		return err
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if n != len(ids) {
		return nhisync.ClaimLost("", len(ids)-n)
	}
	return nil
}
