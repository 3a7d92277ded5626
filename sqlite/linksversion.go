package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"strconv"

	"github.com/nhisync/nhisync"
)

// linksVersionKey is the meta key of the links' version (LinksVersion,
// migration 00013). Not a setting: MetaAll leaves it out, as a copy's
// links are written by its own commits, which draw its own.
const linksVersionKey = "links_version"

// LinksVersion returns the links' version (nhisync.LinksVersioner): every
// commit that changes a link's record, status or hash, of this process or
// another, stores a new one drawn at random in its transaction.
func (s *Store) LinksVersion(ctx context.Context) (uint64, error) {
	const op = "sqlite.LinksVersion"
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, linksVersionKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the store has no links version (migration 00013 missing)"}
	}
	if err != nil {
		return 0, internal(op, err)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the store's links version " + strconv.Quote(v) + " is not a number"}
	}
	return n, nil
}

// newLinksVersion stores a new links version inside tx: its commit
// changes a link head.
func newLinksVersion(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		linksVersionKey, strconv.FormatUint(rand.Uint64(), 10))
	return err
}
