package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/nhisync/nhisync"
)

// Links are stored narrow (migration 00006): the links table, clustered by
// (system_id, ext_id), holds each link's head and the id of its state in
// link_state; link_systems names the systems.

// linkFrom selects linkCols: a link with its system's name and its state.
const (
	linkCols = `ls.name, l.ext_id, l.record_id, l.status, l.hash, st.state`
	linkFrom = ` FROM links l JOIN link_systems ls ON ls.id = l.system_id JOIN link_state st ON st.id = l.state_id`
)

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
// It reads the narrow links table only (no state) on a head connection
// (headscan.go): a page's external ids share one string and its hashes
// one byte slice, the system and status strings are shared.
func (s *Store) ScanLinkHeads(ctx context.Context, system string, fn func(nhisync.LinkHead) error) error {
	return s.scanLinkHeads(ctx, "sqlite.ScanLinkHeads", system, false, func(page []nhisync.LinkHead) error {
		for _, h := range page {
			if err := fn(h); err != nil {
				return err
			}
		}
		return nil
	})
}

var _ nhisync.LinkHeadPager = (*Store)(nil)

// ScanLinkHeadPages is ScanLinkHeads a page at a time (nhisync.LinkHeadPager):
// a page's ids and hashes are the buffers SQLite's bytes were gathered
// into, reused for the next page, not copied into a new string and byte
// slice for each page.
func (s *Store) ScanLinkHeadPages(ctx context.Context, system string, fn func([]nhisync.LinkHead) error) error {
	return s.scanLinkHeads(ctx, "sqlite.ScanLinkHeadPages", system, true, fn)
}

// scanLinkHeads gives fn system's link heads a page at a time; with
// reuse, the page's ids and hashes point into memory the next page
// overwrites.
func (s *Store) scanLinkHeads(ctx context.Context, op, system string, reuse bool, fn func([]nhisync.LinkHead) error) error {
	systems, err := s.linkSystems(ctx, system)
	if err != nil {
		return internal(op, err)
	}
	if staged, err := s.staged(ctx); err != nil {
		return internal(op, err)
	} else if staged {
		return s.scanStaged(ctx, op, systems, "", nil, func(l *nhisync.Link) error {
			return fn([]nhisync.LinkHead{{System: l.System, ExternalID: l.ExternalID, RecordID: l.RecordID, Status: l.Status, Hash: l.Hash}})
		})
	}
	page := make([]nhisync.LinkHead, 0, headPage)
	// ids and hashes gather a page's external ids and hashes as SQLite
	// holds them, ends where each row's end (two per row); the page's
	// heads then share one string and one byte slice.
	var ids, hashes []byte
	ends := make([]uint32, 0, 2*headPage)
	for _, sys := range systems {
		lastExt := ""
		for {
			page, ids, hashes, ends = page[:0], ids[:0], hashes[:0], ends[:0]
			err := s.headScan(ctx, func(c *headConn) error {
				rows, err := c.query(scanHeadsSQL, sys.id, lastExt, int64(headPage))
				if err != nil {
					return err
				}
				defer rows.done()
				for {
					if ok, err := rows.next(); !ok {
						return err
					}
					h := nhisync.LinkHead{System: sys.name}
					id, err := rows.text(0)
					if err != nil {
						return err
					}
					if h.RecordID, err = rows.int(1); err != nil {
						return err
					}
					if h.Status, err = rows.status(2); err != nil {
						return err
					}
					hash, err := rows.blob(3)
					if err != nil {
						return err
					}
					ids, hashes = append(ids, id...), append(hashes, hash...)
					ends = append(ends, uint32(len(ids)), uint32(len(hashes)))
					page = append(page, h)
				}
			})
			if err != nil {
				return internal(op, err)
			}
			if len(page) == 0 {
				// No heads left (the page before was full, or the system
				// has none): fn is given no empty page.
				break
			}
			var idText string
			hashBlob := hashes
			if reuse {
				idText = unsafe.String(unsafe.SliceData(ids), len(ids))
			} else {
				idText, hashBlob = string(ids), slices.Clone(hashes)
			}
			var idAt, hashAt uint32
			for i := range page {
				idEnd, hashEnd := ends[2*i], ends[2*i+1]
				page[i].ExternalID = idText[idAt:idEnd]
				if hashEnd > hashAt {
					page[i].Hash = hashBlob[hashAt:hashEnd:hashEnd]
				}
				idAt, hashAt = idEnd, hashEnd
			}
			// Taken before fn, which is given the page itself, and in a
			// copy of its own: the page's ids are overwritten by the next.
			full := len(page) == headPage
			if full {
				lastExt = strings.Clone(page[len(page)-1].ExternalID)
			}
			if err := fn(page); err != nil {
				return err
			}
			if !full {
				break
			}
		}
	}
	return nil
}

// scanHeadsSQL reads one page of a system's link heads.
var scanHeadsSQL = `SELECT ext_id, record_id, status, hash FROM links
	WHERE system_id = ?1 AND ext_id > ?2 ORDER BY system_id, ext_id LIMIT ?3`

// linkSystem is a row of link_systems.
type linkSystem struct {
	id   int64
	name string
}

// linkSystems returns the system named name (none when no link of it was
// ever stored), or every system by name when name is "".
func (s *Store) linkSystems(ctx context.Context, name string) ([]linkSystem, error) {
	q, args := `SELECT id, name FROM link_systems ORDER BY name`, []any(nil)
	if name != "" {
		q, args = `SELECT id, name FROM link_systems WHERE name = ?`, []any{name}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []linkSystem
	for rows.Next() {
		var sys linkSystem
		if err := rows.Scan(&sys.id, &sys.name); err != nil {
			return nil, err
		}
		out = append(out, sys)
	}
	return out, rows.Err()
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
		statusFilter = ` AND l.status IN (?` + strings.Repeat(`, ?`, len(statuses)-1) + `)`
		for _, st := range statuses {
			statusArgs = append(statusArgs, string(st))
		}
		// Links of these states have no record: saying so lets SQLite
		// search them by index (links_record holds them under NULL, by
		// system and external id) instead of reading every link.
		if !slices.ContainsFunc(statuses, func(st nhisync.LinkStatus) bool {
			return st != nhisync.LinkUnmatched && st != nhisync.LinkDisputed && st != nhisync.LinkDismissed
		}) {
			statusFilter += strayFilter
		}
	}
	systems, err := s.linkSystems(ctx, system)
	if err != nil {
		return internal(op, err)
	}
	if staged, err := s.staged(ctx); err != nil {
		return internal(op, err)
	} else if staged {
		return s.scanStaged(ctx, op, systems, statusFilter, statusArgs, fn)
	}
	page := make([]*nhisync.Link, 0, linkPage)
	q := scanLinksSQL(statusFilter)
	for _, sys := range systems {
		lastExt := ""
		for {
			page = page[:0]
			args := append(append([]any{sys.id, lastExt}, statusArgs...), linkPage)
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
				break
			}
			lastExt = page[len(page)-1].ExternalID
		}
	}
	return nil
}

// strayFilter selects the links that have no record.
const strayFilter = ` AND l.record_id IS NULL`

// staged reports whether links wait in links_stage (a bulk window is open,
// or is being closed).
func (s *Store) staged(ctx context.Context) (bool, error) {
	var staged bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM links_stage)`).Scan(&staged)
	return staged, err
}

// scanStaged is ScanLinks while links are staged: every page, of links
// then of the stage, read from one snapshot, so links the window's end
// moves from the stage into links are seen once. The read stays open
// while fn runs (fn may still use the store: it reads on other
// connections, and in WAL mode a commit does not wait for a reader).
func (s *Store) scanStaged(ctx context.Context, op string, systems []linkSystem, statusFilter string, statusArgs []any, fn func(*nhisync.Link) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return internal(op, err)
	}
	defer tx.Rollback()
	page := make([]*nhisync.Link, 0, linkPage)
	stageQ := `SELECT ` + linkCols + `, l.state_id` + stageFrom + ` WHERE l.system_id = ? AND l.state_id > ?` + statusFilter + ` ORDER BY l.state_id LIMIT ?`
	for _, sys := range systems {
		for _, stage := range []bool{false, true} {
			lastExt, lastState := "", int64(0)
			for {
				page = page[:0]
				var err error
				if !stage {
					err = queryLinks(ctx, tx, scanLinksSQL(statusFilter), append(append([]any{sys.id, lastExt}, statusArgs...), linkPage), func(l *nhisync.Link) error {
						page = append(page, l)
						return nil
					})
				} else {
					err = queryStagedLinks(ctx, tx, stageQ, append(append([]any{sys.id, lastState}, statusArgs...), linkPage), func(l *nhisync.Link, state int64) error {
						page = append(page, l)
						lastState = state
						return nil
					})
				}
				if err != nil {
					return internal(op, err)
				}
				for _, l := range page {
					if err := fn(l); err != nil {
						return err
					}
				}
				if len(page) < linkPage {
					break
				}
				lastExt = page[len(page)-1].ExternalID
			}
		}
	}
	return nil
}

// scanLinksSQL is ScanLinks's query for one page of one system (by id),
// with a status filter. Strays are searched in links_record, whatever the
// statistics say: they are few, and the primary key would read every link
// of the system to find them.
func scanLinksSQL(statusFilter string) string {
	from := linkFrom
	if strings.HasSuffix(statusFilter, strayFilter) {
		from = strings.Replace(from, `FROM links l`, `FROM links l INDEXED BY links_record`, 1)
	}
	return `SELECT ` + linkCols + from + ` WHERE l.system_id = ? AND l.ext_id > ?` + statusFilter + ` ORDER BY l.system_id, l.ext_id LIMIT ?`
}

// LoadLinks returns the links of system with the given external IDs,
// ordered by external id; IDs without a link are left out. Storage
// failures are EINTERNAL.
//
// It reads on the writer connection (see the package doc), but on a
// reader when ctx is marked nhisync.Ahead: then it does not wait for a
// commit in flight.
func (s *Store) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	const op = "sqlite.LoadLinks"
	var out []*nhisync.Link
	db := s.w
	if nhisync.IsAhead(ctx) {
		db = s.r
	}
	gen := s.links.loaded() // before the first query's snapshot
	// A JSON array of the ids when JSON carries each byte for byte (valid
	// UTF-8 without NUL): one parameter, a statement parsed in no time;
	// else bound parameters, which match any bytes.
	const chunk = 500
	args := make([]any, 0, 2*(1+min(chunk, len(ids))))
	var list []byte
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		query := loadLinksJSONSQL
		if list = appendJSONStrings(list[:0], part); list != nil {
			args = append(args[:0], system, string(list))
		} else {
			query = loadLinksSQL(len(part))
			args = loadLinksArgs(args[:0], system, part)
		}
		err := s.queryStoredLinks(ctx, db, gen, query, args, func(l *nhisync.Link) error {
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

// loadLinksSQL is LoadLinks's query for n external ids of one system,
// staged links included: its arguments are the system's name and the ids,
// twice (loadLinksArgs). Its parameters are anonymous: numbered ones
// (?1, ?2 …) are each looked up in a list, by SQLite's parser and by the
// driver when it binds them, which costs n² for n ids.
func loadLinksSQL(n int) string {
	where := ` WHERE l.system_id = (SELECT id FROM link_systems WHERE name = ?) AND l.ext_id IN (?` + strings.Repeat(`, ?`, n-1) + `)`
	return `SELECT ` + linkCols + storedCol + linkFrom + where + ` UNION ALL SELECT ` + linkCols + notStoredCol + stageFrom + where
}

// loadLinksJSONSQL is LoadLinks's query for one system (?1) and external
// ids given as a JSON array of strings (?2), staged links included.
const loadLinksJSONSQL = `SELECT ` + linkCols + storedCol + linkFrom + loadLinksJSONWhere + ` UNION ALL SELECT ` + linkCols + notStoredCol + stageFrom + loadLinksJSONWhere

const loadLinksJSONWhere = ` WHERE l.system_id = (SELECT id FROM link_systems WHERE name = ?1) AND l.ext_id IN (SELECT value FROM json_each(?2))`

// appendJSONStrings appends ids to b as a JSON array of strings, or
// returns nil when one of them is not valid UTF-8 or holds a NUL, which
// JSON would not carry to SQLite byte for byte.
func appendJSONStrings(b []byte, ids []string) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
			return nil
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		for j := 0; j < len(id); j++ {
			switch c := id[j]; {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
		}
		b = append(b, '"')
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// loadLinksArgs appends loadLinksSQL's arguments for system and ids to
// args.
func loadLinksArgs(args []any, system string, ids []string) []any {
	for range 2 {
		args = append(args, system)
		for _, id := range ids {
			args = append(args, id)
		}
	}
	return args
}

// recordLinksSQL selects the links of the records in a JSON array of ids,
// staged links included: those are searched, for each id, in the state
// ids of the runs (links_stage_runs) whose record range holds it. The
// joins are in that order, and the record test is no index term (+), or
// SQLite would build an index of the whole stage for each query.
const recordLinksSQL = `SELECT ` + linkCols + storedCol + linkFrom + ` WHERE l.record_id IN (SELECT value FROM json_each(?1))
	UNION ALL SELECT ` + linkCols + notStoredCol + ` FROM (SELECT DISTINCT value AS id FROM json_each(?1)) j
	CROSS JOIN links_stage_runs r CROSS JOIN links_stage l
	CROSS JOIN link_systems ls ON ls.id = l.system_id CROSS JOIN link_state st ON st.id = l.state_id
	WHERE j.id BETWEEN r.min_record AND r.max_record AND l.state_id BETWEEN r.first_state AND r.last_state AND +l.record_id = j.id
	ORDER BY 3, 1, 2`

// stageFrom is linkFrom over the links staged in a bulk window (bulk.go).
const stageFrom = ` FROM links_stage l JOIN link_systems ls ON ls.id = l.system_id JOIN link_state st ON st.id = l.state_id`

// storedCol follows linkCols in the loads whose links a commit may write
// back (LoadRecords, LoadLinks): the link's state id, kept with its head
// in Link.Stored (queryStoredLinks). A staged link gives notStoredCol
// instead, and is read again when committed: the window's links move
// when it closes.
const (
	storedCol    = `, l.state_id`
	notStoredCol = `, 0`
)

// queryStoredLinks runs a query selecting linkCols and storedCol and
// passes each link to fn, its head and state id (when not 0) kept in
// Stored for the store's next commit of it (linkWriter.storedHeads).
func (s *Store) queryStoredLinks(ctx context.Context, q querier, gen uint64, query string, args []any, fn func(*nhisync.Link) error) error {
	return queryStagedLinks(ctx, q, query, args, func(l *nhisync.Link, stateID int64) error {
		if stateID != 0 {
			l.Stored = &nhisync.StoredLink{By: s.token, System: l.System, ExternalID: l.ExternalID,
				RecordID: l.RecordID, Status: l.Status, Hash: l.Hash, StateID: stateID, Gen: gen}
		}
		return fn(l)
	})
}

// queryLinks runs a query selecting linkCols and passes each link to fn.
func queryLinks(ctx context.Context, q querier, query string, args []any, fn func(*nhisync.Link) error) error {
	return queryStagedLinks(ctx, q, query, args, func(l *nhisync.Link, _ int64) error { return fn(l) })
}

// queryStagedLinks runs a query selecting linkCols and a staged link's
// state id, and passes each link and state id to fn.
func queryStagedLinks(ctx context.Context, q querier, query string, args []any, fn func(*nhisync.Link, int64) error) error {
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
	systems := interned{}
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	var rowid int64
	for rows.Next() {
		l := &nhisync.Link{}
		dest := []any{&l.System, &l.ExternalID, &rec, &status, &l.Hash, &state, &rowid}
		if err := rows.Scan(dest[:len(cols)]...); err != nil {
			return err
		}
		l.System = systems.get(l.System)
		l.RecordID, l.Status = rec.Int64, linkStatus(status)
		if err := dec.DecodeLink(state, l); err != nil {
			return fmt.Errorf("link %s/%s: %w", l.System, l.ExternalID, err)
		}
		if err := fn(l, rowid); err != nil {
			return err
		}
	}
	return rows.Err()
}
