package sqlite

import (
	"context"

	"github.com/nhisync/nhisync/internal/storecodec"
)

// MetaAll returns every stored setting: what `store copy` carries (not
// the bulk window's mark: the copy is synced when it is made; nor the
// links' version: the copy's commits draw its own).
func (s *Store) MetaAll(ctx context.Context) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key, value FROM meta WHERE key NOT IN (?, ?)`, windowMark, storecodec.LinksVersionKey)
	if err != nil {
		return nil, internal("sqlite.MetaAll", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, internal("sqlite.MetaAll", err)
		}
		out[k] = v
	}
	return out, internal("sqlite.MetaAll", rows.Err())
}
