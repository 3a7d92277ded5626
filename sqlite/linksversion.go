package sqlite

import (
	"context"
	"database/sql"

	"github.com/nhisync/nhisync/internal/storecodec"
)

// LinksVersion returns the links' version (nhisync.LinksVersioner,
// migration 00013): every commit that changes a link's record, status or
// hash, of this process or another, stores a new one drawn at random in
// its transaction (newLinksVersion).
func (s *Store) LinksVersion(ctx context.Context) (uint64, error) {
	v, err := s.Meta(ctx, storecodec.LinksVersionKey)
	return storecodec.LinksVersion("sqlite.LinksVersion", v, err)
}

// newLinksVersion stores a new links version inside tx: its commit
// changes a link head.
func newLinksVersion(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		storecodec.LinksVersionKey, storecodec.NewLinksVersion())
	return err
}
