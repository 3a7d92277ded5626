package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// linkCols are the columns queryLinks reads, in order.
const linkCols = `system, ext_id, record_id, status, hash, state`

// ScanLinkHeads streams the head of every link of system ("" for every
// system), ordered by system and external id, a page at a time.
func (s *Store) ScanLinkHeads(ctx context.Context, system string, fn func(nhisync.LinkHead) error) error {
	const op = "postgres.ScanLinkHeads"
	page := make([]nhisync.LinkHead, 0, headPage)
	lastSys, lastExt := system, ""
	for {
		page = page[:0]
		err := func() error {
			q := `SELECT system, ext_id, record_id, status, hash FROM links WHERE (system, ext_id) > ($1, $2)` + oneSystem(system) + ` ORDER BY system, ext_id LIMIT $3`
			rows, err := s.pool.Query(ctx, q, lastSys, lastExt, headPage)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var h nhisync.LinkHead
				var rec *int64
				var status string
				if err := rows.Scan(&h.System, &h.ExternalID, &rec, &status, &h.Hash); err != nil {
					return err
				}
				if rec != nil {
					h.RecordID = *rec
				}
				h.Status = nhisync.LinkStatus(status)
				page = append(page, h)
			}
			return rows.Err()
		}()
		if err != nil {
			return internal(op, err)
		}
		for _, h := range page {
			if err := fn(h); err != nil {
				return err
			}
		}
		if len(page) < headPage {
			return nil
		}
		lastSys, lastExt = page[len(page)-1].System, page[len(page)-1].ExternalID
	}
}

// oneSystem is the condition that keeps a keyset page of links, which
// starts after ($1, $2), within system ($1) when one is given. It is a
// bound (system <= $1) rather than an equality: without statistics (a
// table filled since the last ANALYZE, or autovacuum off) PostgreSQL
// estimates an equality on system to match a few rows, and reads every
// remaining link of the system and sorts them for each page, instead of
// walking the primary key from the page's start; the bound keeps the
// estimate large and the walk.
func oneSystem(system string) string {
	if system == "" {
		return ""
	}
	return ` AND system <= $1`
}

// ScanLinks streams every link of system ("" for all) whose status is one
// of statuses (none for all), ordered by system and external id.
func (s *Store) ScanLinks(ctx context.Context, system string, statuses []nhisync.LinkStatus, fn func(*nhisync.Link) error) error {
	const op = "postgres.ScanLinks"
	var statusFilter string
	var sts []string
	if len(statuses) > 0 {
		statusFilter = ` AND status = ANY($4)`
		for _, st := range statuses {
			sts = append(sts, string(st))
		}
		if !slices.ContainsFunc(statuses, func(st nhisync.LinkStatus) bool {
			return st != nhisync.LinkUnmatched && st != nhisync.LinkDisputed && st != nhisync.LinkDismissed
		}) {
			statusFilter += ` AND record_id IS NULL`
		}
	}
	page := make([]*nhisync.Link, 0, linkPage)
	lastSys, lastExt := system, ""
	for {
		page = page[:0]
		q := `SELECT ` + linkCols + ` FROM links WHERE (system, ext_id) > ($1, $2)` + oneSystem(system) + statusFilter + ` ORDER BY system, ext_id LIMIT $3`
		args := []any{lastSys, lastExt, linkPage}
		if sts != nil {
			args = append(args, sts)
		}
		err := queryLinks(ctx, s.pool, q, args, func(l *nhisync.Link) error {
			page = append(page, l)
			return nil
		})
		if err != nil {
			return internal(op, err)
		}
		for _, l := range page {
			if err := fn(l); err != nil {
				return err
			}
		}
		if len(page) < linkPage {
			return nil
		}
		lastSys, lastExt = page[len(page)-1].System, page[len(page)-1].ExternalID
	}
}

// LoadLinks returns the links of system with the given external IDs,
// ordered by external id; IDs without a link are left out.
func (s *Store) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	const op = "postgres.LoadLinks"
	var out []*nhisync.Link
	const chunk = 5000
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		err := queryLinks(ctx, s.pool, `SELECT `+linkCols+` FROM links WHERE system = $1 AND ext_id = ANY($2)`,
			[]any{system, part}, func(l *nhisync.Link) error {
				out = append(out, l)
				return nil
			})
		if err != nil {
			return nil, internal(op, err)
		}
	}
	slices.SortFunc(out, func(a, b *nhisync.Link) int { return strings.Compare(a.ExternalID, b.ExternalID) })
	return out, nil
}

// queryLinks runs a query selecting linkCols and passes each link to fn.
func queryLinks(ctx context.Context, q querier, query string, args []any, fn func(*nhisync.Link) error) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		rec    *int64
		status string
		state  []byte
		dec    decoder
	)
	for rows.Next() {
		l := &nhisync.Link{}
		if err := rows.Scan(&l.System, &l.ExternalID, &rec, &status, &l.Hash, &state); err != nil {
			return err
		}
		l.RecordID, l.Status = 0, nhisync.LinkStatus(status)
		if rec != nil {
			l.RecordID = *rec
		}
		if err := dec.DecodeLink(state, l); err != nil {
			return fmt.Errorf("link %s/%s: %w", l.System, l.ExternalID, err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return rows.Err()
}
