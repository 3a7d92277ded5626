package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync/internal/storecodec"
)

// LinksVersion returns the links' version (nhisync.LinksVersioner,
// migration 00004): every commit that changes a link's record, status or
// hash, of any process on the database, stores a new one drawn at random
// in its transaction (newLinksVersion).
func (s *Store) LinksVersion(ctx context.Context) (uint64, error) {
	v, err := s.Meta(ctx, storecodec.LinksVersionKey)
	return storecodec.LinksVersion("postgres.LinksVersion", v, err)
}

// newLinksVersion stores a new links version inside tx: its commit
// changes a link head.
func newLinksVersion(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		storecodec.LinksVersionKey, storecodec.NewLinksVersion())
	return err
}

// headsChange reports whether writing these links (one each, by system
// and external id) changes a stored link's head or adds a link. The
// commit holds the commit lock: no other commit writes links meanwhile.
func headsChange(ctx context.Context, tx pgx.Tx, systems, exts []string, recs []*int64, statuses []string, hashes [][]byte) (bool, error) {
	var changed bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[]) AS n(system, ext_id, record_id, status, hash)
		LEFT JOIN links l ON l.system = n.system AND l.ext_id = n.ext_id
		WHERE l.ext_id IS NULL OR l.record_id IS DISTINCT FROM n.record_id OR l.status IS DISTINCT FROM n.status OR l.hash IS DISTINCT FROM n.hash)`,
		systems, exts, recs, statuses, hashes).Scan(&changed)
	return changed, err
}
