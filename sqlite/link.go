package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// linkCols are the columns queryLinks reads, in order.
const linkCols = `system, ext_id, record_id, status, hash, state`

// Scans read a page at a time and hold no read open while fn runs, so fn
// may use the store (even commit) and a long scan does not pin an old
// snapshot, which would keep the WAL from being recycled. A row present for
// the whole scan is seen exactly once. They are variables so tests can
// make pages tiny.
var (
	headPage = 10000
	linkPage = 1000
)

// ScanLinkHeads streams the head of every link of system ("" for every
// system), ordered by system and external id. An error from fn stops the
// scan and is returned as is; storage failures are EINTERNAL.
//
// It reads below database/sql (rawQuery) and keeps, per head, only the
// external id and hash the driver copied out: the system, status and kind
// strings are shared.
func (s *Store) ScanLinkHeads(ctx context.Context, system string, fn func(nhisync.LinkHead) error) error {
	const op = "sqlite.ScanLinkHeads"
	page := make([]nhisync.LinkHead, 0, headPage)
	systems := interned{}
	lastSys, lastExt := system, ""
	for {
		page = page[:0]
		// Four columns for one system (a column the driver hands over
		// costs allocations per row), five for all.
		q, cols := `SELECT ext_id, record_id, status, hash FROM links
				WHERE system = ?1 AND ext_id > ?2 ORDER BY system, ext_id LIMIT ?3`, 4
		if system == "" {
			q, cols = `SELECT ext_id, record_id, status, hash, system FROM links
				WHERE (system, ext_id) > (?1, ?2) ORDER BY system, ext_id LIMIT ?3`, 5
		}
		err := s.rawQuery(ctx, q, namedArgs(lastSys, lastExt, int64(headPage)), cols, func(row []driver.Value) error {
			h := nhisync.LinkHead{System: system}
			var status string
			var err error
			if system == "" {
				if h.System, err = rawString(row[4]); err != nil {
					return err
				}
				h.System = systems.get(h.System)
			}
			if h.ExternalID, err = rawString(row[0]); err != nil {
				return err
			}
			if h.RecordID, err = rawInt(row[1]); err != nil {
				return err
			}
			if status, err = rawString(row[2]); err != nil {
				return err
			}
			h.Status = linkStatus(status)
			if h.Hash, err = rawBytes(row[3]); err != nil {
				return err
			}
			page = append(page, h)
			return nil
		})
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

// ScanLinks streams every link of system ("" for all) whose status is one
// of statuses (none for all), ordered by system and external id. An error
// from fn stops the scan and is returned as is; storage failures are
// EINTERNAL.
func (s *Store) ScanLinks(ctx context.Context, system string, statuses []nhisync.LinkStatus, fn func(*nhisync.Link) error) error {
	const op = "sqlite.ScanLinks"
	var statusFilter string
	var statusArgs []any
	if len(statuses) > 0 {
		statusFilter = ` AND status IN (?` + strings.Repeat(`, ?`, len(statuses)-1) + `)`
		for _, st := range statuses {
			statusArgs = append(statusArgs, string(st))
		}
		// Links of these states have no record: saying so lets SQLite
		// search them by index (links_record holds them under NULL)
		// instead of reading every link.
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
		q := scanLinksSQL(system != "", statusFilter)
		args := []any{lastSys, lastExt}
		if system != "" {
			args = []any{system, lastExt}
		}
		args = append(append(args, statusArgs...), linkPage)
		err := queryLinks(ctx, s.r, q, args, func(l *nhisync.Link) error {
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

// scanLinksSQL is ScanLinks's query for one page: of one system or all,
// with a status filter.
func scanLinksSQL(oneSystem bool, statusFilter string) string {
	if oneSystem {
		return `SELECT ` + linkCols + ` FROM links WHERE system = ? AND ext_id > ?` + statusFilter + ` ORDER BY system, ext_id LIMIT ?`
	}
	return `SELECT ` + linkCols + ` FROM links WHERE (system, ext_id) > (?, ?)` + statusFilter + ` ORDER BY system, ext_id LIMIT ?`
}

// LoadLinks returns the links of system with the given external IDs,
// ordered by external id; IDs without a link are left out. Storage
// failures are EINTERNAL.
func (s *Store) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	const op = "sqlite.LoadLinks"
	var out []*nhisync.Link
	// Bound parameters, not a JSON array: an external id is matched byte
	// for byte, valid UTF-8 or not.
	const chunk = 500
	args := make([]any, 0, 1+min(chunk, len(ids)))
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		args = append(args[:0], system)
		for _, id := range part {
			args = append(args, id)
		}
		err := queryLinks(ctx, s.r, `SELECT `+linkCols+` FROM links WHERE system = ? AND ext_id IN (?`+strings.Repeat(`, ?`, len(part)-1)+`)`,
			args, func(l *nhisync.Link) error {
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
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		rec    sql.NullInt64
		status string
		state  sql.RawBytes
		dec    decoder
	)
	for rows.Next() {
		l := &nhisync.Link{}
		if err := rows.Scan(&l.System, &l.ExternalID, &rec, &status, &l.Hash, &state); err != nil {
			return err
		}
		l.RecordID, l.Status = rec.Int64, nhisync.LinkStatus(status)
		if err := dec.DecodeLink(state, l); err != nil {
			return fmt.Errorf("link %s/%s: %w", l.System, l.ExternalID, err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return rows.Err()
}
