package sqlite

import (
	"context"

	"github.com/nhisync/nhisync"
)

// checkpointPage is how many checkpoints ScanCheckpoints reads per query.
var checkpointPage = 1000

// ScanCheckpoints streams every stored checkpoint in order of tree size.
// It reads a page at a time and hands each page to fn after the query is
// done, so fn may use the store and memory stays bounded however many
// passes signed checkpoints. An error from fn stops the scan and is
// returned as is; storage failures are EINTERNAL.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(*nhisync.Checkpoint) error) error {
	const op = "sqlite.ScanCheckpoints"
	after := int64(0)
	for {
		page, err := s.checkpointsAfter(ctx, after)
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

// checkpointsAfter returns up to checkpointPage checkpoints of a size
// above after, by size.
func (s *Store) checkpointsAfter(ctx context.Context, after int64) ([]*nhisync.Checkpoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT size, root, note, at FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?`, after, checkpointPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []*nhisync.Checkpoint
	for rows.Next() {
		c := &nhisync.Checkpoint{}
		var at string
		if err := rows.Scan(&c.Size, &c.Root, &c.Note, &at); err != nil {
			return nil, err
		}
		if err := setTime(&c.At, at); err != nil {
			return nil, err
		}
		page = append(page, c)
	}
	return page, rows.Err()
}
