package sqlite

import (
	"context"
	"database/sql"
	"errors"
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
	res, err := s.w.ExecContext(ctx, `INSERT INTO leases (name, holder, expires) VALUES (?1, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.holder = excluded.holder OR leases.expires <= ?4`,
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
// one does not hold changes nothing and is no error. Storage failures are
// EINTERNAL.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return internal("sqlite.ReleaseLease", err)
	}
	return nil
}

// Lease returns the holder and expiry of the named lease, "" and the zero
// time when nobody holds it. Storage failures are EINTERNAL.
func (s *Store) Lease(ctx context.Context, name string) (string, time.Time, error) {
	const op = "sqlite.Lease"
	var holder, expires string
	err := s.r.QueryRowContext(ctx, `SELECT holder, expires FROM leases WHERE name = ?`, name).Scan(&holder, &expires)
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
