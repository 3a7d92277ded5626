package sql

import (
	"cmp"
	"context"
	stdsql "database/sql"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// Snapshot streams every row of the table one page of rows at a time:
// each page is a short query of its own, read whole and released before
// its rows are emitted, so memory stays constant and no read holds a
// transaction or a lock while the engine works (a SQLite file in rollback
// journal mode would refuse its writers for as long as a read lasted). A
// row whose id is NULL or empty is skipped: it cannot be linked. It
// returns *nhisync.Error EUNAVAIL when a query fails or a page does not
// arrive within the timeout, and EINVALID when a value cannot be decoded
// (a failing read transform), naming the row.
//
// Pages follow the id column (`WHERE id > last ORDER BY id LIMIT n`), so
// a row whose id holds still is read exactly once however the table
// changes meanwhile. In a SQLite rowid table they follow the rowid
// instead (see rowidScan): the order of the rows in the file, read
// sequentially, where the order of an id index of random (GUID-like) ids
// fetches every row from a different place in the file.
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	_, err := c.full(ctx, emit)
	return err
}

// Changes streams the rows whose updated_column is at or after the
// cursor ("" for every row) and returns the highest updated value seen,
// as text, for the next call (the cursor given when no row matched).
//
// The comparison is inclusive, so every row sharing the cursor's
// timestamp is read again (the engine's content hashes drop the repeats):
// rows stamped in the same tick as the last row read, including ones
// committed after that read, are never skipped, which an exclusive
// cursor or a (timestamp, id) keyset would do. Caveats: the cursor trusts
// whoever sets updated_column. A writer whose clock lags, or a
// transaction that commits long after it stamped its rows, can leave a
// row behind the cursor, and rows whose updated_column is NULL are never
// returned; the engine's periodic full snapshot catches both. Writes by
// nhisync itself leave updated_column alone (a trigger may set it); the
// engine knows what it wrote. Errors are those of Snapshot.
func (c *CursorConnector) Changes(ctx context.Context, cursor string, emit func(nhisync.Observation) error) (string, error) {
	if cursor == "" {
		return c.full(ctx, emit)
	}
	return c.scan(ctx, c.updated+" >= "+c.d.param(1), []any{cursor}, cursor, emit)
}

// full reads every row, in rowid order where the table has rowids.
func (c *Connector) full(ctx context.Context, emit func(nhisync.Observation) error) (string, error) {
	if c.rowid != "" {
		return c.rowidScan(ctx, emit)
	}
	return c.scan(ctx, "", nil, "", emit)
}

// idPage is the query of one page of rows in id order: those matching
// where (with args) whose id is after last (nil for the first page).
func (c *Connector) idPage(sel, where string, args []any, last any) (string, []any) {
	return c.keyPage(sel, c.id, where, args, last)
}

// keyPage is the query of one page of rows with an id in the order of
// key (the id or a SQLite rowid): those matching where (with args) whose
// key is after last (nil for the first page).
func (c *Connector) keyPage(sel, key, where string, args []any, last any) (string, []any) {
	conds := []string{c.id + " IS NOT NULL"}
	if where != "" {
		conds = append(conds, where)
	}
	if last != nil {
		args = append(args[:len(args):len(args)], last)
		conds = append(conds, key+" > "+c.d.param(len(args)))
	}
	return sel + " WHERE " + strings.Join(conds, " AND ") + " ORDER BY " + key + " LIMIT " + strconv.Itoa(pageSize), args
}

// page runs the query of one page on q and reads its rows, width values
// each, into buf, within the timeout.
func (c *Connector) page(ctx context.Context, q querier, query string, args []any, width int, buf [][]any) ([][]any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.pool.timeout)
	defer cancel()
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	buf = buf[:0]
	dest := make([]any, width)
	for rows.Next() {
		if len(buf) < cap(buf) {
			buf = buf[:len(buf)+1]
		} else {
			buf = append(buf, nil)
		}
		vals := buf[len(buf)-1]
		if len(vals) != width {
			vals = make([]any, width)
			buf[len(buf)-1] = vals
		}
		for i := range vals {
			vals[i] = nil
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
	}
	return buf, rows.Err()
}

// width is the number of columns selectAll reads.
func (c *Connector) width() int {
	n := len(c.cols) + 1
	if c.updated != "" {
		n++
	}
	return n
}

// readFailed is the error of a page that failed: the context's when it
// ended, else EUNAVAIL.
func (c *Connector) readFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.unavail(err, "cannot read table %s (timeout per page %s)", c.sys.Settings.String(SettingTable), c.pool.timeout)
}

// observer turns rows as selectAll reads them into observations for
// emit, and keeps the highest updated_column value seen.
type observer struct {
	c    *Connector
	obs  nhisync.Observation
	next string
	emit func(nhisync.Observation) error
}

func (c *Connector) observer(cursor string, emit func(nhisync.Observation) error) *observer {
	return &observer{c: c, obs: nhisync.Observation{Values: make([]nhisync.Value, len(c.cols))}, next: cursor, emit: emit}
}

// rowID is the id of a row as observations carry it ("": none).
func rowID(raw any) string {
	id, _ := native.Text(raw)
	return strings.TrimSpace(id)
}

// row emits the row vals, whose id is id (not "").
func (o *observer) row(id string, vals []any) error {
	c := o.c
	o.obs.ID = id
	for i, m := range c.sys.Fields {
		if !m.Direction.Reads() {
			o.obs.Values[i] = nhisync.Value{}
			continue
		}
		v, err := decode(c.kinds[i], vals[i+1], m)
		if err != nil {
			return c.errorf(nhisync.EINVALID, "row %s: %s", id, nhisync.ErrorMessage(err))
		}
		o.obs.Values[i] = v
	}
	o.obs.Modified = time.Time{}
	if c.updated != "" {
		u, _ := native.Text(vals[c.width()-1])
		o.obs.Modified = modified(u)
		if u != "" && (o.next == "" || compareCursor(u, o.next) > 0) {
			o.next = u
		}
	}
	return o.emit(o.obs)
}

// keyOf is a row's id as the next page's keyset bound: bound as text, as
// the id was read, so the comparison uses the column's collation, as
// ORDER BY does.
func keyOf(raw any) any {
	if b, ok := raw.([]byte); ok {
		return string(b)
	}
	return raw
}

func (c *Connector) scan(ctx context.Context, where string, args []any, cursor string, emit func(nhisync.Observation) error) (string, error) {
	o := c.observer(cursor, emit)
	var last any
	buf := make([][]any, 0, pageSize)
	for {
		var err error
		query, qargs := c.idPage(c.selectAll, where, args, last)
		if buf, err = c.page(ctx, c.db, query, qargs, c.width(), buf); err != nil {
			return "", c.readFailed(ctx, err)
		}
		for _, vals := range buf {
			if id := rowID(vals[0]); id != "" {
				if err := o.row(id, vals); err != nil {
					return "", err
				}
			}
		}
		if len(buf) < pageSize {
			return o.next, nil
		}
		last = keyOf(buf[len(buf)-1][0])
	}
}

// rowidScan reads every row of a SQLite rowid table in pages in rowid
// order (`WHERE rowid > last ORDER BY rowid LIMIT n`): each page is a
// run of the table's leaf pages, where pages in the order of an id index
// of random ids fetch every row from another place in the file (at 300k
// rows that costs twice the CPU).
//
// A row keeps its rowid while it is updated, but not always: INSERT OR
// REPLACE deletes it and inserts it again at a new rowid past the end,
// an UPDATE may set the rowid, and VACUUM may number the rows of a table
// without an INTEGER PRIMARY KEY afresh. A row that moves ahead of the
// read would be read twice (the engine would dispute its id), one that
// moves behind it missed (the engine would take it as vanished); pages
// in id order do neither to a row whose id holds still. So the read
// keeps to one connection and asks SQLite's data_version, before the
// first page and after each, whether another connection has committed
// since the read began. While none has, every page saw the same state
// and the read is a consistent snapshot. Once one has, the rest of the
// read emits only ids it has not emitted yet, and sweep then walks the
// ids in their order for the rows it missed: every row whose id holds
// still is read exactly once, as in id order. (An id column that is not
// unique then has its repeats dropped for that read; pages in id order
// drop those that fall on a page boundary.) For that the read keeps a
// 128-bit hash of each id it emits (16 bytes a row), and it holds one of
// the pool's connections from its first page to its last (but no
// transaction or lock between pages).
func (c *Connector) rowidScan(ctx context.Context, emit func(nhisync.Observation) error) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, c.pool.timeout)
	conn, err := c.db.Conn(cctx)
	cancel()
	if err != nil {
		return "", c.readFailed(ctx, err)
	}
	defer conn.Close()
	v0, err := c.dataVersion(ctx, conn)
	if err != nil {
		return "", c.readFailed(ctx, err)
	}
	o := c.observer("", emit)
	s := &emitted{h: newIDHasher()}
	w := c.width() + 1
	var last any
	buf := make([][]any, 0, pageSize)
	for {
		query, args := c.keyPage(c.selectRowid, c.rowid, "", nil, last)
		if buf, err = c.page(ctx, conn, query, args, w, buf); err != nil {
			return "", c.readFailed(ctx, err)
		}
		if !s.moving {
			// After the page: a commit before it may have moved its rows.
			v, err := c.dataVersion(ctx, conn)
			if err != nil {
				return "", c.readFailed(ctx, err)
			}
			if v != v0 {
				s.freeze()
			}
		}
		for _, vals := range buf {
			if id := rowID(vals[0]); id != "" && s.add(id) {
				if err := o.row(id, vals); err != nil {
					return "", err
				}
			}
		}
		if len(buf) < pageSize {
			break
		}
		last = buf[len(buf)-1][w-1]
	}
	if !s.moving {
		return o.next, nil
	}
	return c.sweep(ctx, conn, o, s)
}

// emitted is the set of ids a rowid read has emitted, as hashes: a list
// while no row can have moved, a set once one can (moving).
type emitted struct {
	h      idHasher
	moving bool
	// list holds the hashes emitted before moving, sorted once moving;
	// more those emitted since.
	list []idHash
	more map[idHash]struct{}
}

// freeze sorts the list for lookups: from now on rows may have moved.
func (s *emitted) freeze() {
	s.moving = true
	slices.SortFunc(s.list, idHash.compare)
	s.more = map[idHash]struct{}{}
}

// has reports whether id was emitted; only once moving.
func (s *emitted) has(id string) bool { return s.hasSum(s.h.sum(id)) }

// hasSum is has of an id's hash.
func (s *emitted) hasSum(x idHash) bool {
	if _, ok := s.more[x]; ok {
		return true
	}
	_, ok := slices.BinarySearchFunc(s.list, x, idHash.compare)
	return ok
}

// add notes id as emitted and reports whether it is to be (it was not
// already).
func (s *emitted) add(id string) bool {
	x := s.h.sum(id)
	if !s.moving {
		s.list = append(s.list, x)
		return true
	}
	if s.hasSum(x) {
		return false
	}
	s.more[x] = struct{}{}
	return true
}

// dataVersion is SQLite's PRAGMA data_version on conn: it changes when
// another connection has committed to the database since the last call.
func (c *Connector) dataVersion(ctx context.Context, conn *stdsql.Conn) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.pool.timeout)
	defer cancel()
	var v int64
	err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v)
	return v, err
}

// sweep ends a rowid read during which rows may have moved. It walks the
// ids in their order, in pages of ids and rowids only (an id index
// answers them alone), and reads and emits the rows whose id the read has
// not emitted (rows that moved behind the rowid read, and rows added
// since): those of a page in one query, by their rowids, in id order.
func (c *Connector) sweep(ctx context.Context, conn *stdsql.Conn, o *observer, s *emitted) (string, error) {
	sel := "SELECT " + c.d.raw(c.id) + ", " + c.rowid + " FROM " + c.table
	missed := c.selectAll + " WHERE " + c.rowid + " IN (SELECT value FROM json_each(?)) ORDER BY " + c.id
	var last any
	buf := make([][]any, 0, pageSize)
	var rows [][]any
	var list []byte
	for {
		var err error
		query, args := c.idPage(sel, "", nil, last)
		if buf, err = c.page(ctx, conn, query, args, 2, buf); err != nil {
			return "", c.readFailed(ctx, err)
		}
		list = append(list[:0], '[')
		for _, ids := range buf {
			if id := rowID(ids[0]); id == "" || s.has(id) {
				continue
			}
			r, ok := ids[1].(int64)
			if !ok {
				return "", c.errorf(nhisync.EINTERNAL, "row %s: rowid %v is not an integer", rowID(ids[0]), ids[1])
			}
			if len(list) > 1 {
				list = append(list, ',')
			}
			list = strconv.AppendInt(list, r, 10)
		}
		if len(list) > 1 {
			if rows, err = c.page(ctx, conn, missed, []any{string(append(list, ']'))}, c.width(), rows); err != nil {
				return "", c.readFailed(ctx, err)
			}
			// The rows as they are now: their ids may have changed since.
			for _, vals := range rows {
				if id := rowID(vals[0]); id != "" && s.add(id) {
					if err := o.row(id, vals); err != nil {
						return "", err
					}
				}
			}
		}
		if len(buf) < pageSize {
			return o.next, nil
		}
		last = keyOf(buf[len(buf)-1][0])
	}
}

// idHash is a 128-bit hash of an id: two ids share one with a chance of
// about 2^-128, far below anything else that could go wrong.
type idHash struct{ a, b uint64 }

func (x idHash) compare(y idHash) int {
	if c := cmp.Compare(x.a, y.a); c != 0 {
		return c
	}
	return cmp.Compare(x.b, y.b)
}

// idHasher hashes ids with two random seeds of its own.
type idHasher struct{ a, b maphash.Seed }

func newIDHasher() idHasher { return idHasher{maphash.MakeSeed(), maphash.MakeSeed()} }

func (h idHasher) sum(id string) idHash {
	return idHash{maphash.String(h.a, id), maphash.String(h.b, id)}
}

// timeLayouts are the forms databases print timestamps in, beyond those
// nhisync.ParseTime reads.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999",
}

// modified reads an updated_column value: a timestamp in text, or an
// integer epoch in seconds, milliseconds, microseconds or nanoseconds
// (told apart by size). Anything else is no time.
func modified(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n < 1e11:
			return time.Unix(n, 0).UTC()
		case n < 1e14:
			return time.UnixMilli(n).UTC()
		case n < 1e17:
			return time.UnixMicro(n).UTC()
		default:
			return time.Unix(0, n).UTC()
		}
	}
	if t, ok := nhisync.ParseTime(s); ok {
		return t
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// compareCursor orders two updated_column values: numerically when both
// are numbers, by time when both are times, else as text (the order a
// text column sorts in).
func compareCursor(a, b string) int {
	if x, err := strconv.ParseFloat(a, 64); err == nil {
		if y, err := strconv.ParseFloat(b, 64); err == nil {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	if x, y := modified(a), modified(b); !x.IsZero() && !y.IsZero() {
		return x.Compare(y)
	}
	return strings.Compare(a, b)
}

// queryRow reads one row's raw values of cols by id; n is how many rows
// hold the id (0 or 1, or 2 meaning "more than one").
func (c *Connector) queryRow(ctx context.Context, q querier, cols []string, id string) ([]any, int, error) {
	sel := make([]string, len(cols))
	for i, col := range cols {
		sel[i] = c.d.raw(col)
	}
	rows, err := q.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+c.table+" WHERE "+c.id+" = "+c.d.param(1)+c.d.lockRow, id)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	vals := make([]any, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	n := 0
	for rows.Next() && n < 2 {
		n++
		if n == 1 {
			if err := rows.Scan(dest...); err != nil {
				return nil, 0, err
			}
		}
	}
	return vals, n, rows.Err()
}

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*stdsql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (stdsql.Result, error)
}
