package sql

import (
	"context"
	stdsql "database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// Snapshot streams every row of the table, in the order of the id
// column, one page of rows at a time: each page is a short query of its
// own (`WHERE id > last ORDER BY id LIMIT n`), read whole and released
// before its rows are emitted, so memory stays constant and no read
// holds a transaction or a lock while the engine works. A row whose id is
// NULL or empty is skipped: it cannot be linked. It returns
// *nhisync.Error EUNAVAIL when a query fails or a page does not arrive
// within the timeout, and EINVALID when a value cannot be decoded (a
// failing read transform), naming the row.
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	_, err := c.scan(ctx, "", nil, "", emit)
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
		return c.scan(ctx, "", nil, cursor, emit)
	}
	return c.scan(ctx, c.updated+" >= "+c.d.param(1), []any{cursor}, cursor, emit)
}

// page reads one page of rows: those matching where (with args) whose
// id is after last (nil for the first page), in id order, into buf.
func (c *Connector) page(ctx context.Context, where string, args []any, last any, buf [][]any) ([][]any, error) {
	q := c.selectAll
	conds := []string{c.id + " IS NOT NULL"}
	if where != "" {
		conds = append(conds, where)
	}
	if last != nil {
		args = append(args[:len(args):len(args)], last)
		conds = append(conds, c.id+" > "+c.d.param(len(args)))
	}
	q += " WHERE " + strings.Join(conds, " AND ")
	q += " ORDER BY " + c.id + " LIMIT " + strconv.Itoa(pageSize)
	ctx, cancel := context.WithTimeout(ctx, c.pool.timeout)
	defer cancel()
	rows, err := c.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	buf = buf[:0]
	for rows.Next() {
		if len(buf) < cap(buf) {
			buf = buf[:len(buf)+1]
		} else {
			buf = append(buf, nil)
		}
		vals := buf[len(buf)-1]
		if vals == nil {
			vals = make([]any, c.width())
			buf[len(buf)-1] = vals
		}
		dest := make([]any, len(vals))
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

func (c *Connector) scan(ctx context.Context, where string, args []any, cursor string, emit func(nhisync.Observation) error) (string, error) {
	n := c.width()
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.cols))}
	next := cursor
	var last any
	buf := make([][]any, 0, pageSize)
	for {
		var err error
		buf, err = c.page(ctx, where, args, last, buf)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", c.unavail(err, "cannot read table %s (timeout per page %s)", c.sys.Settings.String(SettingTable), c.pool.timeout)
		}
		for _, vals := range buf {
			id, _ := native.Text(vals[0])
			if obs.ID = strings.TrimSpace(id); obs.ID == "" {
				continue
			}
			for i, m := range c.sys.Fields {
				if !m.Direction.Reads() {
					obs.Values[i] = nhisync.Value{}
					continue
				}
				v, err := decode(c.kinds[i], vals[i+1], m)
				if err != nil {
					return "", c.errorf(nhisync.EINVALID, "row %s: %s", obs.ID, nhisync.ErrorMessage(err))
				}
				obs.Values[i] = v
			}
			obs.Modified = time.Time{}
			if c.updated != "" {
				u, _ := native.Text(vals[n-1])
				obs.Modified = modified(u)
				if u != "" && (next == "" || compareCursor(u, next) > 0) {
					next = u
				}
			}
			if err := emit(obs); err != nil {
				return "", err
			}
		}
		if len(buf) < pageSize {
			return next, nil
		}
		last = buf[len(buf)-1][0]
		if b, ok := last.([]byte); ok {
			// Bound as text, as the id was read: the comparison then uses
			// the column's collation, as ORDER BY does.
			last = string(b)
		}
	}
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
