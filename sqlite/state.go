package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nhisync/nhisync"
)

// Systems returns the remembered state of every system, ordered by name.
// Storage failures are EINTERNAL.
func (s *Store) Systems(ctx context.Context) ([]*nhisync.SystemState, error) {
	return listItems[nhisync.SystemState](ctx, s, "sqlite.Systems", `SELECT data FROM systems ORDER BY name`, nil)
}

// Meta returns a stored setting, "" when it is absent. Storage failures are
// EINTERNAL.
func (s *Store) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", internal("sqlite.Meta", err)
	}
	return v, nil
}

// AcquireLease takes the named lease for holder until now+ttl when it is
// free, expired (its expiry is at or before now) or already held by holder
// (a renewal). It reports false, with no error, when another holder has
// it. It returns EINVALID for an empty name or holder or a ttl that is not
// positive, and EINTERNAL for storage failures.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	const op = "sqlite.AcquireLease"
	if name == "" || holder == "" || ttl <= 0 {
		return false, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "a lease needs a name, a holder and a positive duration"}
	}
	// The epoch (the lease's fencing token) grows when the lease passes to
	// a holder that did not hold it just before; a renewal keeps it.
	res, err := s.w.ExecContext(ctx, `INSERT INTO leases (name, holder, expires, epoch) VALUES (?1, ?2, ?3, 1)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires,
			epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END
		WHERE leases.holder = excluded.holder OR leases.holder = '' OR leases.expires <= ?4`,
		name, holder, formatTime(now.Add(ttl)), formatTime(now))
	if err != nil {
		return false, internal(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, internal(op, err)
	}
	return n == 1, nil
}

// ReleaseLease gives up the named lease if holder has it; releasing a lease
// one does not hold changes nothing and is no error. The lease's row stays
// (without a holder), so its epoch keeps growing. Storage failures are
// EINTERNAL.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if holder == "" {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE leases SET holder = '', expires = '' WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return internal("sqlite.ReleaseLease", err)
	}
	return nil
}

// Lease returns the holder and expiry of the named lease, "" and the zero
// time when nobody holds it. Storage failures are EINTERNAL.
func (s *Store) Lease(ctx context.Context, name string) (string, time.Time, error) {
	const op = "sqlite.Lease"
	var holder, expires string
	err := s.r.QueryRowContext(ctx, `SELECT holder, expires FROM leases WHERE name = ? AND holder != ''`, name).Scan(&holder, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, internal(op, err)
	}
	t, err := parseTime(expires)
	if err != nil {
		return "", time.Time{}, internal(op, err)
	}
	return holder, t, nil
}

// LeaseFence returns the fencing token of the named lease while holder
// holds it (even past its expiry, as long as nobody took it over). It
// returns ECONFLICT when holder does not hold it and EINTERNAL for storage
// failures.
func (s *Store) LeaseFence(ctx context.Context, name, holder string) (*nhisync.Fence, error) {
	const op = "sqlite.LeaseFence"
	epoch, err := leaseEpoch(ctx, s.r, name, holder)
	if err != nil {
		return nil, internal(op, err)
	}
	if epoch == 0 {
		return nil, lostLease(op, name)
	}
	return &nhisync.Fence{Lease: name, Holder: holder, Epoch: epoch}, nil
}

// leaseEpoch returns the epoch of the named lease if holder holds it, 0
// otherwise.
func leaseEpoch(ctx context.Context, q querier, name, holder string) (int64, error) {
	if holder == "" {
		return 0, nil
	}
	var epoch int64
	err := q.QueryRowContext(ctx, `SELECT epoch FROM leases WHERE name = ? AND holder = ?`, name, holder).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return epoch, err
}

// checkFence fails, inside a commit's transaction, unless the fence's
// holder still holds its lease at its epoch.
func checkFence(ctx context.Context, tx *sql.Tx, f *nhisync.Fence) error {
	if f == nil {
		return nil
	}
	epoch, err := leaseEpoch(ctx, newTxStmts(ctx, tx), f.Lease, f.Holder)
	if err != nil {
		return err
	}
	if epoch != f.Epoch {
		return lostLease("", f.Lease)
	}
	return nil
}

// lostLease is the error of a holder whose lease passed to another.
func lostLease(op, name string) error {
	return &nhisync.Error{Code: nhisync.ECONFLICT, Op: op, Message: fmt.Sprintf(
		"this process no longer holds the %s lease: another process took it over after it expired (was this one paused or stalled?); nothing more of this run was written; run it again", name)}
}
