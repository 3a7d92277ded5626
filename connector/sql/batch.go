package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// A batch of writes costs a statement or two instead of two per write:
// one SELECT … WHERE id IN (…) reads (and on a server locks) every row
// the batch writes to, each write is compared with its row as update
// compares it, and the writes that change their row go out as one
// conditional UPDATE per shape (the set of columns they change), each row
// still updated only where every column holds the value just read:
//
//   - SQLite: UPDATE t SET c = v.new FROM (VALUES (id, new…, old…), …) AS v
//     WHERE t.id = v.id AND t.c IS v.old … RETURNING t.id
//   - PostgreSQL: the same with IS NOT DISTINCT FROM, each value cast to
//     its column's type (VALUES would make them text)
//   - MySQL/MariaDB: UPDATE t SET c = CASE id WHEN ? THEN ? … END WHERE
//     id IN (…) AND ((id = ? AND c <=> ?) OR …), values bound beside the
//     columns they meet (a derived table's would bring a collation of
//     their own)
//
// A row RETURNING names (MySQL: every row, when the rows changed are as
// many as the writes) is applied; a row it leaves out is stale, as a
// single write's UPDATE changing no row is; MySQL re-reads the rows of an
// UPDATE that changed fewer and compares them. A statement that fails
// (a constraint, a value its column refuses) is undone (PostgreSQL: to a
// savepoint) and its writes go one by one, so the failure is the failing
// write's alone (logged when none of them fails alone: then nothing else
// says why). So do a batch whose read fails, and one whose rows read
// back with ids other than the ones asked for (a collation or a cast
// matching more loosely than equal text). A write whose id more than one
// row holds, as the id column's collation compares (the same id twice, or
// ids differing only in case, trailing spaces or accents, in a column
// that is not unique), fails as alone. A read or UPDATE the server
// refuses as SQL it cannot parse (refusedSQL) is the connector's bug: it
// fails the batch's writes, saying so, instead of going one by one. The
// writes whose id no row holds as asked, and those changing the id column itself, each read and write
// their row alone, after the batch.

// maxBatch is how many writes one batch takes at most.
const maxBatch = 500

// mysqlRows is how many rows one MySQL UPDATE takes at most: its CASE
// and OR terms are tried one after another for every row, so the server's
// work grows with the square of the rows (BenchmarkApplyMariaDB: 290–375
// µs a write with 500 rows a statement, 173–205 with 100, for 3 µs more
// of this process's CPU).
const mysqlRows = 100

// maxParams bounds the placeholders of one statement (SQLite allows
// 32766, PostgreSQL and MySQL 65535).
const maxParams = 30000

// segment returns how many writes, from the first, one batch takes:
// updates (not creates) of distinct ids, at most maxBatch. A second write
// to an id starts the next batch, so it reads what the first one left.
func segment(writes []nhisync.Write) int {
	seen := make(map[string]struct{}, min(len(writes), maxBatch))
	n := 0
	for n < len(writes) && n < maxBatch {
		w := writes[n]
		if w.Create {
			break
		}
		if _, dup := seen[w.ID]; dup {
			break
		}
		seen[w.ID] = struct{}{}
		n++
	}
	return n
}

// pending is a write whose row holds Old in the columns todo: what its
// conditional UPDATE sets and compares.
type pending struct {
	i    int // in the batch
	id   string
	cols []column
	todo []int
	raw  []any // the row as read, aligned with cols
	news []any // the New values encoded, aligned with todo
}

// shape is the writes of a batch that change the same columns, in the
// same order.
type shape struct {
	cols []column // the columns changed (their ch is the first write's)
	rows []pending
}

// updateBatch applies writes (updates of distinct ids), setting results.
func (c *Connector) updateBatch(ctx context.Context, tx *txn, writes []nhisync.Write, results []nhisync.WriteResult) {
	if len(writes) > 1 && !c.windows && c.Log != nil {
		c.oneByOne.Do(func() {
			c.Log.InfoContext(ctx, "the server has no window functions (MariaDB before 10.2, MySQL before 8.0, or it refused one at open), which a batch read needs; writes read their rows one by one",
				"system", c.sys.Name, "table", c.sys.Settings.String(SettingTable), "version", c.version)
		})
	}
	if len(writes) == 1 || !c.windows {
		for i, w := range writes {
			results[i] = c.update(ctx, tx, w)
		}
		return
	}
	cols := make([][]column, len(writes))
	valid := make([]bool, len(writes))
	read := make([]bool, len(c.cols))
	ids := make([]any, 0, len(writes))
	for i, w := range writes {
		cl, err := c.columns(w)
		if err != nil {
			results[i] = failed(err)
			continue
		}
		cols[i], valid[i] = cl, true
		for _, x := range cl {
			read[x.at] = true
		}
		ids = append(ids, w.ID)
	}
	if len(ids) == 0 {
		return
	}
	rows, ok, err := c.readBatch(ctx, tx, read, ids)
	if err != nil {
		for i := range writes {
			if valid[i] {
				results[i] = failed(err)
			}
		}
		return
	}
	if !ok {
		for i, w := range writes {
			if valid[i] {
				results[i] = c.update(ctx, tx, w)
			}
		}
		return
	}
	var alone []int
	var shapes []*shape
	byKey := map[string]*shape{}
	var key []byte
	for i, w := range writes {
		if !valid[i] {
			continue
		}
		r := rows[w.ID]
		switch {
		case r == nil:
			alone = append(alone, i)
			continue
		case r.n > 1:
			results[i] = failed(c.errorf(nhisync.EINVALID, "id %q is held by more than one row; make the id column unique to write to it", w.ID))
			continue
		}
		raw := make([]any, len(cols[i]))
		for k, cl := range cols[i] {
			raw[k] = r.raw[cl.at]
		}
		todo, stale, err := compare(cols[i], raw)
		switch {
		case err != nil:
			results[i] = failed(c.errorf(nhisync.EINVALID, "row %s: %s", w.ID, nhisync.ErrorMessage(err)))
			continue
		case stale:
			results[i] = nhisync.WriteResult{Status: nhisync.WriteStale, ID: w.ID}
			continue
		case len(todo) == 0:
			results[i] = nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}
			continue
		case slices.ContainsFunc(todo, func(t int) bool { return cols[i][t].col == c.id }):
			// A write changing the id column goes alone: the batch UPDATE
			// knows its rows by id (RETURNING would name the new one, and
			// MySQL's CASE id terms after the id's own would see the new
			// one and set NULL).
			alone = append(alone, i)
			continue
		}
		p := pending{i: i, id: w.ID, cols: cols[i], todo: todo, raw: raw, news: make([]any, len(todo))}
		key = key[:0]
		for k, t := range todo {
			cl := cols[i][t]
			if p.news[k], err = encode(cl.kind, cl.ch.New, cl.m); err != nil {
				break
			}
			key = strconv.AppendInt(append(key, ' '), int64(cl.at), 10)
		}
		if err != nil {
			results[i] = failed(err)
			continue
		}
		s := byKey[string(key)]
		if s == nil {
			s = &shape{}
			for _, t := range todo {
				s.cols = append(s.cols, cols[i][t])
			}
			byKey[string(key)] = s
			shapes = append(shapes, s)
		}
		s.rows = append(s.rows, p)
	}
	for _, s := range shapes {
		per := c.paramsPerRow(len(s.cols))
		step := max(1, maxParams/per)
		if c.d == mysqlDialect {
			step = min(step, mysqlRows)
		}
		for from := 0; from < len(s.rows); {
			to := min(len(s.rows), from+step)
			c.updateShape(ctx, tx, s.cols, s.rows[from:to], results)
			from = to
		}
	}
	for _, i := range alone {
		results[i] = c.update(ctx, tx, writes[i])
	}
}

// readRow is a row of a batch read: the raw values of the columns read
// (aligned with c.cols) and how many rows hold its id (2: more than one).
type readRow struct {
	raw []any
	n   int
}

// readBatch reads (and on a server locks) the rows of ids, the columns
// read marks, by id as asked. ok is false when the read failed or a row
// came back with an id not asked for as it is spelled: the writes then go
// one by one.
//
// Each row comes with how many rows read hold an id equal to its own as
// the id column compares them (a window's PARTITION BY the id column,
// under its collation): more than one when the column is not unique and
// holds the id twice, or holds ids that differ only in case, trailing
// spaces or accents (a case- or accent-insensitive or PAD SPACE
// collation). Such an id is held by more than one row, as its write alone
// would find; the batch UPDATE would match each of those rows with any of
// their writes. It is not called on a server without window functions
// (Connector.windows).
//
// A read the server refuses as SQL it cannot parse (refusedSQL) is a bug
// of this connector, not a trait of the writes or the table: err is then
// *nhisync.Error EINTERNAL saying so, with the server's words, and the
// writes fail with it rather than going one by one, which would hide it.
func (c *Connector) readBatch(ctx context.Context, tx *txn, read []bool, ids []any) (map[string]*readRow, bool, error) {
	var q strings.Builder
	q.WriteString("SELECT ")
	col := func(n int, name string) {
		if n > 0 {
			q.WriteString(", ")
		}
		q.WriteString(c.d.raw(name))
		if c.d == postgres {
			q.WriteString(" AS c" + strconv.Itoa(n))
		}
	}
	col(0, c.id)
	var at []int
	for k, r := range read {
		if r {
			at = append(at, k)
			col(len(at), c.cols[k])
		}
	}
	if c.d != postgres {
		q.WriteString(", COUNT(*) OVER (PARTITION BY " + c.id + ")")
	}
	q.WriteString(" FROM " + c.table + " WHERE " + c.id + " IN (")
	for k := range ids {
		if k > 0 {
			q.WriteString(", ")
		}
		q.WriteString(c.d.param(k + 1))
	}
	q.WriteString(")" + c.d.lockRow)
	query := q.String()
	if c.d == postgres {
		// PostgreSQL locks no rows beside a window function: the rows are
		// locked in a subquery, whose id column keeps its collation.
		query = "SELECT r.*, COUNT(*) OVER (PARTITION BY r.c0) FROM (" + query + ") AS r"
	}
	asked := make(map[string]*readRow, len(ids))
	ok := true
	// Under a savepoint on PostgreSQL (alone): a read that fails (an id
	// the id column's type refuses, a lock not had in time) would abort
	// the transaction, and with it every write of the Apply.
	err := c.alone(ctx, tx, func() error {
		rows, err := tx.QueryContext(ctx, query, ids...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for _, id := range ids {
			asked[id.(string)] = nil
		}
		vals := make([]any, 2+len(at))
		dest := make([]any, len(vals))
		for i := range vals {
			dest[i] = &vals[i]
		}
		for rows.Next() {
			clear(vals)
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			id, text := native.Text(vals[0])
			r, was := asked[id]
			if !text || !was {
				ok = false
				return nil
			}
			held, _ := native.Text(vals[len(vals)-1])
			if r != nil || held != "1" {
				if r == nil {
					r = &readRow{}
					asked[id] = r
				}
				r.n = 2
				continue
			}
			r = &readRow{raw: make([]any, len(c.cols)), n: 1}
			for k, a := range at {
				r.raw[a] = vals[1+k]
			}
			asked[id] = r
		}
		return rows.Err()
	})
	if err != nil {
		if tx.lost == nil && ctx.Err() == nil && refusedSQL(err) {
			return nil, false, c.refused(err, "the batch read of table %s", c.sys.Settings.String(SettingTable))
		}
		c.batchReadFailed(ctx, tx, len(ids), err)
		return nil, false, nil
	}
	if !ok {
		return nil, false, nil
	}
	for id, r := range asked {
		if r == nil {
			delete(asked, id)
		}
	}
	return asked, true, nil
}

// refusedSQL reports whether err is the server refusing a statement as
// SQL it cannot parse: MySQL/MariaDB's ER_PARSE_ERROR (1064),
// PostgreSQL's syntax_error (42601). The connector builds its statements
// itself, so that is its own bug (or a server that is not what its
// version says).
func refusedSQL(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == erParseError
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42601"
}

// refused is the error of a statement the server refused as SQL
// (refusedSQL): EINTERNAL, the statement named by what (a format), the
// server's words and version said.
func (c *Connector) refused(err error, what string, args ...any) error {
	server := c.d.name
	if c.version != "" {
		server += " " + c.version
	}
	e := c.errorf(nhisync.EINTERNAL, "the server (%s) refused %s as SQL it cannot parse, a bug in nhisync's sql connector (report it with this message); the writes stay queued and are retried: %v",
		server, fmt.Sprintf(what, args...), c.t.scrub(err))
	e.Err = c.t.scrub(err)
	return e
}

// batchReadFailed logs why a batch read failed, its writes going one by
// one: each write's own read and UPDATE report what concerns it, but a
// failure of the batch alone (its statement refused) would leave every
// Apply slower with nothing said. A failure that lost the transaction
// (tx.lost) or came with the context's end is the Apply's own error, not
// logged here.
func (c *Connector) batchReadFailed(ctx context.Context, tx *txn, n int, err error) {
	if tx.lost != nil || ctx.Err() != nil || c.Log == nil {
		return
	}
	args := []any{"system", c.sys.Name, "table", c.sys.Settings.String(SettingTable), "writes", n, "error", c.t.scrub(err).Error()}
	c.Log.WarnContext(ctx, "a batch read failed; its writes go one by one", args...)
}

// paramsPerRow is how many placeholders a row of a batch UPDATE of n
// columns binds.
func (c *Connector) paramsPerRow(n int) int {
	if c.d == mysqlDialect {
		return 2 + 3*n // CASE id WHEN ? THEN ? per column, IN, id = ? and one per column
	}
	return 1 + 2*n // (id, new…, old…)
}

// updateShape runs one conditional UPDATE of rows, writes changing the
// columns cols, and sets their results. An UPDATE that fails sends its
// writes one by one (batchUpdateFailed says why when none of them fails
// alone), but one the server refuses as SQL it cannot parse (refusedSQL),
// the connector's bug, fails them, EINTERNAL, saying so.
func (c *Connector) updateShape(ctx context.Context, tx *txn, cols []column, rows []pending, results []nhisync.WriteResult) {
	if len(rows) == 1 {
		p := rows[0]
		results[p.i] = c.updateRow(ctx, tx, p.id, p.cols, p.todo, p.raw)
		return
	}
	q, args := c.batchUpdate(cols, rows)
	applied := make(map[string]bool, len(rows))
	// Under a savepoint on PostgreSQL (alone): a failed statement aborts
	// a PostgreSQL transaction, and the writes go one by one after it.
	err := c.alone(ctx, tx, func() error {
		if c.d == mysqlDialect {
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err == nil && n == int64(len(rows)) {
				for _, p := range rows {
					applied[p.id] = true
				}
			}
			return nil
		}
		got, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer got.Close()
		var id any
		for got.Next() {
			if err := got.Scan(&id); err != nil {
				return err
			}
			s, _ := native.Text(id)
			applied[s] = true
		}
		return got.Err()
	})
	if err != nil {
		if tx.lost == nil && ctx.Err() == nil && refusedSQL(err) {
			e := c.refused(err, "the batch update of table %s", c.sys.Settings.String(SettingTable))
			for _, p := range rows {
				results[p.i] = failed(e)
			}
			return
		}
		for _, p := range rows {
			results[p.i] = c.updateRow(ctx, tx, p.id, p.cols, p.todo, p.raw)
		}
		c.batchUpdateFailed(ctx, tx, rows, results, err)
		return
	}
	for _, p := range rows {
		switch {
		case applied[p.id]:
			results[p.i] = nhisync.WriteResult{Status: nhisync.WriteApplied, ID: p.id}
		case c.d == mysqlDialect:
			// Fewer rows changed than written to: MySQL counts a row set
			// to what it held as unchanged. Read each back.
			results[p.i] = c.recheck(ctx, tx, p)
		default:
			results[p.i] = nhisync.WriteResult{Status: nhisync.WriteStale, ID: p.id}
		}
	}
}

// batchUpdateFailed logs why a batch UPDATE failed when its writes, gone
// one by one after it (results), all went through: no write's failure
// then says why, and every batch of the kind would go one by one, slower,
// with nothing said. A write that failed alone says why itself (a
// constraint, a value its column refuses); a lost transaction or the
// context's end is the Apply's own error.
func (c *Connector) batchUpdateFailed(ctx context.Context, tx *txn, rows []pending, results []nhisync.WriteResult, err error) {
	if tx.lost != nil || ctx.Err() != nil || c.Log == nil {
		return
	}
	for _, p := range rows {
		if results[p.i].Status == nhisync.WriteFailed {
			return
		}
	}
	c.Log.WarnContext(ctx, "a batch update failed though each of its writes went through alone; its writes went one by one",
		"system", c.sys.Name, "table", c.sys.Settings.String(SettingTable), "writes", len(rows), "error", c.t.scrub(err).Error())
}

// recheck reads p's row after its UPDATE: applied when it holds every
// New value, stale otherwise.
func (c *Connector) recheck(ctx context.Context, tx *txn, p pending) nhisync.WriteResult {
	names := make([]string, len(p.cols))
	for k, cl := range p.cols {
		names[k] = cl.col
	}
	raw, n, err := c.readRow(ctx, tx, names, p.id)
	switch {
	case err != nil:
		return failed(c.writeUnavail(err, "cannot read row %s", p.id))
	case n != 1:
		return nhisync.WriteResult{Status: nhisync.WriteStale, ID: p.id}
	}
	if todo, stale, err := compare(p.cols, raw); err != nil || stale || len(todo) > 0 {
		return nhisync.WriteResult{Status: nhisync.WriteStale, ID: p.id}
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: p.id}
}

// old returns the value of p's k-th todo column as read, to be bound
// where the UPDATE compares it: JSON as text (PostgreSQL's json has no
// equality, MySQL's JSON never equals a string).
func (p pending) old(k int) any {
	t := p.todo[k]
	v := p.raw[t]
	if b, ok := v.([]byte); ok && p.cols[t].kind == kindJSON {
		return string(b)
	}
	return v
}

// batchUpdate builds the conditional UPDATE of rows changing cols.
func (c *Connector) batchUpdate(cols []column, rows []pending) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, len(rows)*c.paramsPerRow(len(cols)))
	param := func(v any) string {
		args = append(args, v)
		return c.d.param(len(args))
	}
	if c.d == mysqlDialect {
		b.WriteString("UPDATE " + c.table + " SET ")
		for k, cl := range cols {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteString(cl.col + " = CASE " + c.id)
			for _, p := range rows {
				b.WriteString(" WHEN " + param(p.id) + " THEN " + param(p.news[k]))
			}
			b.WriteString(" END")
		}
		b.WriteString(" WHERE " + c.id + " IN (")
		for i, p := range rows {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(param(p.id))
		}
		b.WriteString(") AND (")
		for i, p := range rows {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteString("(" + c.id + " = " + param(p.id))
			for k, cl := range cols {
				col, ph := cl.col, param(p.old(k))
				if cl.kind == kindJSON {
					col, ph = c.d.text(col), c.d.text(ph)
				}
				b.WriteString(" AND " + col + " " + c.d.nullSafeEq + " " + ph)
			}
			b.WriteString(")")
		}
		b.WriteString(")")
		return b.String(), args
	}
	// SQLite and PostgreSQL: UPDATE … FROM (VALUES …), whose columns are
	// column1 (the id), then each column's new value, then its old one.
	cast := func(ph, typ string) string {
		if c.d == postgres {
			return ph + "::" + typ
		}
		return ph
	}
	vcol := func(i int) string { return "v.column" + strconv.Itoa(i) }
	b.WriteString("UPDATE " + c.table + " AS t SET ")
	for k, cl := range cols {
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteString(cl.col + " = " + vcol(2+k))
	}
	b.WriteString(" FROM (VALUES ")
	for i, p := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + cast(param(p.id), c.pgIDType))
		for k, cl := range cols {
			b.WriteString(", " + cast(param(p.news[k]), c.pgType(cl.at)))
		}
		for k, cl := range cols {
			typ := c.pgType(cl.at)
			if cl.kind == kindJSON {
				typ = "text"
			}
			b.WriteString(", " + cast(param(p.old(k)), typ))
		}
		b.WriteString(")")
	}
	b.WriteString(") AS v WHERE t." + c.id + " = " + vcol(1))
	for k, cl := range cols {
		col := "t." + cl.col
		if cl.kind == kindJSON {
			col = c.d.text(col)
		}
		b.WriteString(" AND " + col + " " + c.d.nullSafeEq + " " + vcol(2+len(cols)+k))
	}
	if c.d == sqlite {
		// SQLite's RETURNING names the target table's columns unqualified
		// only (no FROM table's column can be named there).
		b.WriteString(" RETURNING " + c.d.raw(c.id))
	} else {
		b.WriteString(" RETURNING " + c.d.raw("t."+c.id))
	}
	return b.String(), args
}

// pgType is the PostgreSQL type of the k-th mapped column ("" elsewhere).
func (c *Connector) pgType(k int) string {
	if c.pgTypes == nil {
		return ""
	}
	return c.pgTypes[k]
}

// pgColumnTypes reads the PostgreSQL type names of table's column id and
// of cols, without their modifiers (varchar, not varchar(20)): an explicit
// cast to varchar(n), char(n) or bit(n) cuts a longer value to fit where
// storing it is refused, so a value too long for its column would be
// written cut short. A modifier of -1 names the type unbounded (bpchar,
// "bit"), not as character or bit, which mean char(1) and bit(1). A
// domain (or an array of one) is named by its base type, down through
// domains over domains: a cast to the domain casts to its base type with
// the domain's modifier, and cuts as well; storing the value in the
// column still checks the domain's modifier and constraints.
//
// It fails when the catalog cannot be read (a role refused SELECT on
// pg_attribute) or does not list one of the columns (the table changed
// since its columns were read): a batch update could not cast its values,
// and going one by one instead, for the connector's life, would leave
// every Apply slower with nothing said.
func pgColumnTypes(ctx context.Context, db *stdsql.DB, table, id string, cols []string) (string, []string, error) {
	rows, err := db.QueryContext(ctx, `WITH RECURSIVE base(name, typ) AS (
			SELECT attname, atttypid FROM pg_attribute
			WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
		UNION ALL
			SELECT b.name, CASE WHEN t.typtype = 'd' THEN t.typbasetype
				ELSE (SELECT eb.typarray FROM pg_type eb WHERE eb.oid = e.typbasetype) END
			FROM base b JOIN pg_type t ON t.oid = b.typ
			LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
			WHERE t.typtype = 'd' OR e.typtype = 'd')
		SELECT b.name, format_type(b.typ, -1) FROM base b JOIN pg_type t ON t.oid = b.typ
		LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
		WHERE t.typtype <> 'd' AND e.typtype IS DISTINCT FROM 'd'`, table)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return "", nil, err
		}
		types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return "", nil, err
	}
	out := make([]string, len(cols))
	for k, col := range append([]string{id}, cols...) {
		typ := types[col]
		if typ == "" {
			return "", nil, fmt.Errorf("the catalog lists no column %q of the table (was it changed meanwhile?)", col)
		}
		if k > 0 {
			out[k-1] = typ
		}
	}
	return types[id], out, nil
}
