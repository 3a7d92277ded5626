package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/internal/storecodec"
)

// Systems returns the remembered state of every system, ordered by name.
func (s *Store) Systems(ctx context.Context) ([]*nhisync.SystemState, error) {
	return listItems[nhisync.SystemState](ctx, s, "postgres.Systems", `SELECT data FROM systems ORDER BY name`, nil)
}

// Meta returns a stored setting, "" when it is absent.
func (s *Store) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", internal("postgres.Meta", err)
	}
	return v, nil
}

// AcquireLease takes the named lease for holder until now+ttl when it is
// free, expired (its expiry is at or before now) or already held by holder
// (a renewal), in one conditional upsert: PostgreSQL's row lock on the
// lease row orders concurrent attempts, and the loser's WHERE sees the
// winner's row. It reports false, with no error, when another holder has
// it. EINVALID for an empty name or holder or a ttl that is not positive.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	const op = "postgres.AcquireLease"
	if name == "" || holder == "" || ttl <= 0 {
		return false, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "a lease needs a name, a holder and a positive duration"}
	}
	for attempt := 1; ; attempt++ {
		tag, err := s.pool.Exec(ctx, `INSERT INTO leases (name, holder, expires, epoch) VALUES ($1, $2, $3, 1)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires,
				epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END
			WHERE leases.holder = excluded.holder OR leases.holder = '' OR leases.expires <= $4`,
			name, holder, formatTime(now.Add(ttl)), formatTime(now))
		if err != nil {
			if (retryable(err) || pgCode(err) == "23505") && attempt < commitAttempts {
				continue
			}
			return false, internal(op, err)
		}
		return tag.RowsAffected() == 1, nil
	}
}

// ReleaseLease gives up the named lease if holder has it; the row stays
// (without a holder), so its epoch keeps growing.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if holder == "" {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE leases SET holder = '', expires = '' WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return internal("postgres.ReleaseLease", err)
	}
	return nil
}

// Lease returns the holder and expiry of the named lease, "" and the zero
// time when nobody holds it.
func (s *Store) Lease(ctx context.Context, name string) (string, time.Time, error) {
	const op = "postgres.Lease"
	var holder, expires string
	err := s.pool.QueryRow(ctx, `SELECT holder, expires FROM leases WHERE name = $1 AND holder <> ''`, name).Scan(&holder, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
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
// holds it (even past its expiry, as long as nobody took it over);
// ECONFLICT when holder does not hold it.
func (s *Store) LeaseFence(ctx context.Context, name, holder string) (*nhisync.Fence, error) {
	const op = "postgres.LeaseFence"
	epoch, err := leaseEpoch(ctx, s.pool, name, holder, false)
	if err != nil {
		return nil, internal(op, err)
	}
	if epoch == 0 {
		return nil, lostLease(op, name)
	}
	return &nhisync.Fence{Lease: name, Holder: holder, Epoch: epoch}, nil
}

// leaseEpoch returns the epoch of the named lease if holder holds it, 0
// otherwise. With share, the lease row is locked FOR SHARE until the
// transaction ends, so nobody can take the lease over before the commit
// that checked it is done.
func leaseEpoch(ctx context.Context, q querier, name, holder string, share bool) (int64, error) {
	if holder == "" {
		return 0, nil
	}
	query := `SELECT epoch FROM leases WHERE name = $1 AND holder = $2`
	if share {
		query += ` FOR SHARE`
	}
	var epoch int64
	err := q.QueryRow(ctx, query, name, holder).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return epoch, err
}

// checkFence fails, inside a commit's transaction, unless the fence's
// holder still holds its lease at its epoch; the lease row stays locked
// until the commit ends.
func checkFence(ctx context.Context, tx pgx.Tx, f *nhisync.Fence) error {
	if f == nil {
		return nil
	}
	epoch, err := leaseEpoch(ctx, tx, f.Lease, f.Holder, true)
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

// MetaAll returns every stored setting: what `store copy` carries (not
// the links' version: the copy's commits draw their own).
func (s *Store) MetaAll(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM meta WHERE key <> $1`, storecodec.LinksVersionKey)
	if err != nil {
		return nil, internal("postgres.MetaAll", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, internal("postgres.MetaAll", err)
		}
		out[k] = v
	}
	return out, internal("postgres.MetaAll", rows.Err())
}
