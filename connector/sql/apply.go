package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// Apply applies a batch in one transaction (SQLite: BEGIN IMMEDIATE;
// PostgreSQL and MySQL lock each row read with SELECT … FOR UPDATE).
// For each write it reads the row's current values of the changed
// columns and compares them canonically with Old: a row no longer holding
// an Old value is WriteStale, a row already holding every New value is
// WriteApplied unchanged, a row that is gone WriteMissing. Otherwise it
// runs `UPDATE … SET c = new … WHERE id = ? AND c IS <value just read>`
// and checks that it changed the row. Up to 500 writes to distinct rows
// are read with one SELECT and updated with one such UPDATE per set of
// columns changed (batch.go); the outcome of each write is the same as
// alone. Columns not mapped, and the updated_column, are left alone.
//
// Create writes (provision: true) INSERT the mapped columns; the id is the
// mapped id column's value, the database's own (an INTEGER PRIMARY KEY or
// a column DEFAULT; on MySQL/MariaDB only AUTO_INCREMENT, the only id it
// tells back), or a random hex id. A retried create finds the row it
// made (same match column values) instead of inserting another. A create
// giving a mapped id column no value, on a table that makes none, fails
// before inserting; one whose row gets no id from the table (an empty
// default) fails the Apply, its transaction rolled back: a row no write
// can name is never kept.
//
// A statement failing for one write (a constraint, a type) fails that
// write alone (on PostgreSQL every statement, a batch's read and UPDATE
// as a write's, runs under a savepoint, as a failed statement would abort
// the transaction). A batch whose read fails goes write by write, but a
// read the server refuses as SQL it cannot parse, the connector's bug,
// fails the batch's writes, EINTERNAL, saying so. On MySQL before 8.0 and
// MariaDB before 10.2 (as their version at open says, or refusing a
// window function tried then), which have no window functions for the
// batch read, every write reads its row alone.
//
// It returns *nhisync.Error EUNAVAIL, with nothing applied, when the
// transaction cannot begin or the database refuses to commit it, and
// when a statement's failure rolled the whole transaction back: on
// MySQL/MariaDB a deadlock, the lock table full, a lock wait timeout on
// a server that rolls a transaction back for it
// (innodb_rollback_on_timeout), or the connection lost or killed; the
// writes stay queued and are retried.
// When the commit gets no answer (the connection lost, or none within
// the timeout setting on PostgreSQL and MySQL/MariaDB), or one saying it
// was cut short (on MySQL/MariaDB a kill, mysqlCommitCut), it returns
// EUNAVAIL saying that whether the writes were applied is unknown: the
// server may have committed them.
// ctx ending before the COMMIT is sent rolls the transaction back and
// Apply returns ctx's error, nothing applied; once the COMMIT is sent,
// its answer is waited for whether ctx ends or not, and Apply says what
// it was: on PostgreSQL up to the timeout setting, on SQLite up to its
// busy timeout (the same setting); on MySQL/MariaDB up to the timeout
// setting, then its session is killed and the answer waited for up to
// the setting again (commitBounded: the driver runs a COMMIT on no
// context or deadline).
func (c *Connector) Apply(ctx context.Context, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	results := make([]nhisync.WriteResult, len(writes))
	if len(writes) == 0 {
		return results, nil
	}
	// The transaction lives in a context of its own, which ctx's end
	// reaches (rolling it back) only until the COMMIT is to be sent:
	// stop then tells exactly whether ctx ended first, nothing committed.
	// A COMMIT sent is waited for (on PostgreSQL up to the timeout
	// setting, below), not abandoned when ctx ends, so that what the
	// server did is known.
	txCtx, cancelTx := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTx()
	stop := context.AfterFunc(ctx, cancelTx)
	defer stop()
	var err error
	var stx *stdsql.Tx
	var session *mysqlSession
	if c.d == mysqlDialect {
		session, stx, err = c.beginSession(txCtx)
	} else {
		stx, err = c.db.BeginTx(txCtx, nil)
	}
	if err != nil {
		return nil, c.writeUnavail(err, "cannot begin a transaction on table %s", c.sys.Settings.String(SettingTable))
	}
	if session != nil {
		defer session.close() // after the Rollback below
	}
	defer stx.Rollback()
	tx := &txn{Tx: stx}
	for i := 0; i < len(writes); {
		if writes[i].Create {
			results[i] = c.create(ctx, tx, writes[i])
			i++
		} else {
			n := segment(writes[i:])
			c.updateBatch(ctx, tx, writes[i:i+n], results[i:i+n])
			i += n
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if tx.lost != nil {
			return nil, c.writeUnavail(tx.lost, "a statement's failure rolled back the transaction of the writes to table %s", c.sys.Settings.String(SettingTable))
		}
	}
	if !stop() {
		// ctx ended before the COMMIT was sent: the transaction is
		// rolled back, nothing committed.
		return nil, ctx.Err()
	}
	if c.d == postgres {
		// pgx runs the COMMIT on txCtx: cut once the timeout setting has
		// run out. SQLite's COMMIT, which may wait for readers to go, is
		// bounded by its busy timeout (the timeout setting too), and
		// ends in SQLITE_BUSY, rolled back: cut by the context instead
		// at the same moment, its error would say nothing of the lock.
		// The MySQL driver runs its COMMIT on no context (its BeginTx
		// watches the context during BEGIN only, and database/sql
		// cancels the transaction's context itself before the COMMIT):
		// its session is killed instead (commitBounded).
		t := time.AfterFunc(c.pool.timeout, cancelTx)
		defer t.Stop()
	}
	if session != nil {
		err = c.commitBounded(stx, session)
	} else {
		err = tx.Commit()
	}
	if err != nil {
		if !commitRefused(err) {
			return nil, c.commitUnknown(err)
		}
		return nil, c.writeUnavail(err, "cannot commit the writes to table %s", c.sys.Settings.String(SettingTable))
	}
	return results, nil
}

// unavail returns *nhisync.Error EUNAVAIL with err as its cause.
func (c *Connector) unavail(err error, format string, args ...any) error {
	e := c.errorf(nhisync.EUNAVAIL, format, args...)
	if locked(err) {
		// The message is what a failed write records: say why, as the
		// cause itself is not kept there. Only SQLite waits for the
		// timeout setting (its busy_timeout); a server waits as long as
		// its own lock settings say.
		e.Message += ": another connection holds the table's lock"
		if c.d == sqlite {
			e.Message += fmt.Sprintf(" and did not let go within %s (setting %s)", c.pool.timeout, SettingTimeout)
		}
	} else if timedOut(err) {
		// On PostgreSQL statement_timeout, started with the statement,
		// runs out before an equal lock_timeout: a lock wait mostly ends
		// here too.
		e.Message += fmt.Sprintf(": the %s server cut the statement short as it did not finish within %s (setting %s): it waited for a row another transaction holds, or ran slow; raise the setting to let statements run longer", c.d.name, c.pool.timeout, SettingTimeout)
	}
	e.Err = c.t.scrub(err)
	return e
}

// writeUnavail is unavail for a write batch: a lock held elsewhere leaves
// the writes queued, to be retried, and the message says so. The message
// is what a failed write records (SPEC §3.13: with why), so any other
// cause is said in it, scrubbed.
func (c *Connector) writeUnavail(err error, format string, args ...any) error {
	e := c.unavail(err, format, args...).(*nhisync.Error)
	if locked(err) || timedOut(err) {
		e.Message += "; the writes stay queued and are retried"
	} else if err != nil {
		e.Message += ": " + e.Err.Error()
	}
	return e
}

// locked reports whether err is a database's "locked by another
// transaction" error: SQLite's SQLITE_BUSY or SQLITE_LOCKED once its busy
// timeout ran out, MariaDB/MySQL's lock wait timeout (1205) or deadlock
// (1213), PostgreSQL's lock_not_available (55P03) or deadlock_detected
// (40P01).
func locked(err error) bool {
	var se *msqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == erLockWaitTimeout || me.Number == erLockDeadlock
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "55P03" || pe.Code == "40P01"
	}
	return false
}

// timedOut reports whether err is a statement cut short by the server's
// statement time limit, which the timeout setting fills in where nothing
// else sets one (pgTimeouts, mariaTimeout): PostgreSQL's query_canceled
// (57014; a statement cancelled by hand says the same),
// MariaDB's ER_STATEMENT_TIMEOUT (1969), MySQL's ER_QUERY_TIMEOUT (3024,
// max_execution_time, SELECTs only). Each undoes its statement alone.
func timedOut(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == erStatementTimeout || me.Number == erQueryTimeout
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57014"
}

// txn is one Apply's transaction.
type txn struct {
	*stdsql.Tx
	// lost is the error of a statement that rolled the whole transaction
	// back (endsTx), or of a PostgreSQL savepoint command that failed
	// (alone): what the Apply wrote before it is gone, and a statement
	// after it would run outside any transaction, or fail in an aborted
	// one. No statement runs once it is set (alone), and the Apply fails.
	lost error
}

// endsTx reports whether err, a statement's, rolled its whole
// transaction back: on MySQL/MariaDB a deadlock (1213) and InnoDB's lock
// table running out of room (1206, ER_LOCK_TABLE_FULL) always do, a lock
// wait timeout (1205) when the server runs with
// innodb_rollback_on_timeout; and so does the connection's end, which
// the server rolls the transaction back for: the driver finding it
// broken (driver.ErrBadConn, mysql.ErrInvalidConn), or the server saying
// the session was killed (ER_CONNECTION_KILLED 1927,
// ER_SESSION_WAS_KILLED 3169) or is shutting down (ER_SERVER_SHUTDOWN
// 1053), as mysqlErrors lists them. PostgreSQL's statements run under a savepoint, whose command
// fails on a connection gone; SQLite's roll back alone.
func (c *Connector) endsTx(err error) bool {
	if c.d != mysqlDialect {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return true
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	return mysqlErrors[me.Number].endsTx || (me.Number == erLockWaitTimeout && c.rollbackOnTimeout)
}

func failed(err error) nhisync.WriteResult {
	return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
}

// column is a change resolved to its mapping and column.
type column struct {
	m    *nhisync.Mapping
	col  string
	kind colKind
	ch   nhisync.Change
	// at is the mapping's index in sys.Fields (and cols).
	at int
}

// columns resolves a write's changes, refusing unmapped and read-only
// fields.
func (c *Connector) columns(w nhisync.Write) ([]column, error) {
	out := make([]column, 0, len(w.Changes))
	for _, ch := range w.Changes {
		i := -1
		for k, m := range c.sys.Fields {
			if m.Field == ch.Field {
				i = k
			}
		}
		switch {
		case i < 0:
			return nil, c.errorf(nhisync.EINVALID, "field %s is not mapped in this system", ch.Field)
		case !c.sys.Direction.Writes() || !c.sys.Fields[i].Direction.Writes():
			return nil, c.errorf(nhisync.EINVALID, "field %s is read-only in this system", ch.Field)
		}
		out = append(out, column{m: c.sys.Fields[i], col: c.cols[i], kind: c.kinds[i], ch: ch, at: i})
	}
	return out, nil
}

// compare reads where a row stands against a write's changes: stale when
// a column holds neither Old nor New; todo lists the columns to set.
func compare(cols []column, raw []any) (todo []int, stale bool, err error) {
	for k, cl := range cols {
		cur, err := decode(cl.kind, raw[k], cl.m)
		if err != nil {
			return nil, false, err
		}
		t := cl.m.Type
		cur = t.Canonical(cur)
		switch {
		case cur.Equal(t.Canonical(cl.ch.New)):
		case cur.Equal(t.Canonical(cl.ch.Old)):
			todo = append(todo, k)
		default:
			stale = true
		}
	}
	return todo, stale, nil
}

func (c *Connector) update(ctx context.Context, tx *txn, w nhisync.Write) nhisync.WriteResult {
	cols, err := c.columns(w)
	if err != nil {
		return failed(err)
	}
	names := make([]string, len(cols))
	for k, cl := range cols {
		names[k] = cl.col
	}
	raw, n, err := c.readRow(ctx, tx, names, w.ID)
	switch {
	case err != nil:
		return failed(c.writeUnavail(err, "cannot read row %s", w.ID))
	case n == 0:
		return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}
	case n > 1:
		return failed(c.errorf(nhisync.EINVALID, "id %q is held by more than one row; make the id column unique to write to it", w.ID))
	}
	todo, stale, err := compare(cols, raw)
	switch {
	case err != nil:
		return failed(c.errorf(nhisync.EINVALID, "row %s: %s", w.ID, nhisync.ErrorMessage(err)))
	case stale:
		return nhisync.WriteResult{Status: nhisync.WriteStale, ID: w.ID}
	case len(todo) == 0:
		return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}
	}
	return c.updateRow(ctx, tx, w.ID, cols, todo, raw)
}

// updateRow runs one write's conditional UPDATE of the columns todo
// (indexes into cols) of the row id, which holds raw (aligned with cols):
// applied when it changed the row, stale when it did not.
func (c *Connector) updateRow(ctx context.Context, tx *txn, id string, cols []column, todo []int, raw []any) nhisync.WriteResult {
	var set, where []string
	var args, conds []any
	p := 0
	param := func() string { p++; return c.d.param(p) }
	for _, k := range todo {
		v, err := encode(cols[k].kind, cols[k].ch.New, cols[k].m)
		if err != nil {
			return failed(err)
		}
		set = append(set, cols[k].col+" = "+param())
		args = append(args, v)
	}
	where = append(where, c.id+" = "+param())
	conds = append(conds, id)
	for _, k := range todo {
		col, p, v := cols[k].col, param(), raw[k]
		if cols[k].kind == kindJSON {
			// json has no equality operator in PostgreSQL, and MySQL's JSON
			// never equals a string: compare the text as read.
			col, p = c.d.text(col), c.d.text(p)
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
		}
		where = append(where, col+" "+c.d.nullSafeEq+" "+p)
		conds = append(conds, v)
	}
	q := "UPDATE " + c.table + " SET " + strings.Join(set, ", ") + " WHERE " + strings.Join(where, " AND ")
	res, err := c.execAlone(ctx, tx, q, append(args, conds...)...)
	if err != nil {
		return failed(c.stmtFailed(err, "cannot update row "+id))
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return nhisync.WriteResult{Status: nhisync.WriteStale, ID: id}
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: id}
}

// execAlone runs a statement of one write (see alone).
func (c *Connector) execAlone(ctx context.Context, tx *txn, q string, args ...any) (res stdsql.Result, err error) {
	err = c.alone(ctx, tx, func() error {
		res, err = tx.ExecContext(ctx, q, args...)
		return err
	})
	return res, err
}

// readRow is queryRow of a write's row (see alone).
func (c *Connector) readRow(ctx context.Context, tx *txn, cols []string, id string) (raw []any, n int, err error) {
	err = c.alone(ctx, tx, func() error {
		raw, n, err = c.queryRow(ctx, tx, cols, id)
		return err
	})
	return raw, n, err
}

// alone runs stmt, a statement of the Apply (of one write, or of a
// batch's read or UPDATE), reading every row it returns. On PostgreSQL it
// runs under a savepoint, undone when the statement fails: a failed
// statement aborts a PostgreSQL transaction, and the other writes must
// still go. The savepoint is released either way (rolled back to, it
// would stay, and each later statement would nest one level deeper). A
// failure that rolled the whole transaction back (endsTx), and a
// savepoint command's failure (after a failed statement, with the
// statement's error first: it is the cause, the rollback's failure its
// consequence), is kept in tx.lost, and no statement runs after it.
func (c *Connector) alone(ctx context.Context, tx *txn, stmt func() error) error {
	if tx.lost != nil {
		return tx.lost
	}
	if c.d != postgres {
		err := stmt()
		if err != nil && c.endsTx(err) {
			tx.lost = err
		}
		return err
	}
	// A savepoint command that fails leaves the transaction aborted (or
	// its connection gone) with no savepoint to return to: the
	// transaction is lost, and said so with its cause, rather than each
	// later statement failing as "current transaction is aborted".
	if _, err := tx.ExecContext(ctx, "SAVEPOINT nhisync_write"); err != nil {
		tx.lost = fmt.Errorf("set a savepoint: %w", err)
		return tx.lost
	}
	err := stmt()
	undo, what := "RELEASE SAVEPOINT nhisync_write", "release a savepoint"
	if err != nil {
		// One round trip: with no arguments the statements go as one
		// simple query.
		undo, what = "ROLLBACK TO SAVEPOINT nhisync_write; RELEASE SAVEPOINT nhisync_write", "roll back to a savepoint"
	}
	if _, uerr := tx.ExecContext(ctx, undo); uerr != nil {
		tx.lost = fmt.Errorf("%s: %w", what, uerr)
		if err != nil {
			// The statement's own failure is the cause (the connection it
			// lost, a lock not had): kept first, both kept for errors.As.
			tx.lost = fmt.Errorf("%w; then %s failed: %w", err, what, uerr)
		}
		return tx.lost
	}
	return err
}

func (c *Connector) create(ctx context.Context, tx *txn, w nhisync.Write) nhisync.WriteResult {
	if !c.sys.Provision {
		return failed(c.errorf(nhisync.EINVALID, "this system does not take new records (set provision: true to allow it)"))
	}
	cols, err := c.columns(w)
	if err != nil {
		return failed(err)
	}
	vals := make([]any, len(cols))
	for k, cl := range cols {
		if vals[k], err = encode(cl.kind, cl.ch.New, cl.m); err != nil {
			return failed(err)
		}
	}
	// The id column's value, when the system maps it and the create gives
	// one. Without it a table that makes no id would take the row with
	// none (SQLite lets a TEXT PRIMARY KEY hold NULL), which no write
	// could then name: refused before anything is inserted.
	idAt := -1
	for k, cl := range cols {
		if v, _ := native.Text(vals[k]); cl.col == c.id && strings.TrimSpace(v) != "" {
			idAt = k
		}
	}
	if c.idMapped >= 0 && idAt < 0 && !c.idAuto {
		m := c.sys.Fields[c.idMapped]
		return failed(c.errorf(nhisync.EINVALID, "the new record has no value for the id column %s (field %s) and the table makes none; give the record's %s a value, or the column a default (on MySQL/MariaDB: AUTO_INCREMENT)", c.idName, m.Field, m.Field))
	}
	if res, ok := c.existing(ctx, tx, cols, vals); ok {
		return res
	}
	var names, params []string
	var args []any
	id := ""
	if c.idMapped < 0 && !c.idAuto {
		b := make([]byte, 8)
		if _, err := io.ReadFull(c.Rand, b); err != nil {
			return failed(err)
		}
		id = hex.EncodeToString(b)
		names, params, args = append(names, c.id), append(params, c.d.param(1)), append(args, id)
	}
	for k, cl := range cols {
		if vals[k] == nil {
			continue // the column's default
		}
		names = append(names, cl.col)
		args = append(args, vals[k])
		params = append(params, c.d.param(len(args)))
	}
	q := "INSERT INTO " + c.table + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(params, ", ") + ")"
	if len(names) == 0 {
		q = "INSERT INTO " + c.table + " DEFAULT VALUES"
	}
	if c.d.returning {
		var got any
		if err := c.alone(ctx, tx, func() error {
			return tx.QueryRowContext(ctx, q+" RETURNING "+c.d.raw(c.id), args...).Scan(&got)
		}); err != nil {
			return failed(c.stmtFailed(err, "cannot insert a row"))
		}
		id, _ = native.Text(got)
	} else {
		res, err := c.execAlone(ctx, tx, q, args...)
		if err != nil {
			return failed(c.stmtFailed(err, "cannot insert a row"))
		}
		if idAt >= 0 {
			id, _ = native.Text(vals[idAt])
		} else if c.idAuto {
			n, err := res.LastInsertId()
			if err != nil {
				tx.lost = fmt.Errorf("cannot read the id of a new row, which is in: %w", c.t.scrub(err))
				return failed(tx.lost)
			}
			id = fmt.Sprint(n)
		}
	}
	if id = strings.TrimSpace(id); id == "" {
		// The row is in and cannot be taken out alone: kept, it would be
		// made again by every retry of the write, failed. The
		// transaction is given up instead (tx.lost), the writes queued.
		tx.lost = fmt.Errorf("a new row got no id from the table (its id column's default gave none); map the id column or give it a default that makes one")
		return failed(tx.lost)
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: id}
}

// stmtFailed is the error of a write whose INSERT or UPDATE failed,
// what saying which ("cannot insert a row"): invalid (a constraint, a
// value its column refuses), or, for a lock not had or a statement cut
// short by the timeout setting, unavailable, the write queued.
func (c *Connector) stmtFailed(err error, what string) error {
	if locked(err) || timedOut(err) {
		return c.writeUnavail(err, "%s", what)
	}
	return c.errorf(nhisync.EINVALID, "%s: %v", what, c.t.scrub(err))
}

// existing finds a row already holding a create's match column values
// (the create retried): applied when it holds every New value, stale when
// it differs. ok is false when there is no such row, or the system does
// not map every match field the create gives.
func (c *Connector) existing(ctx context.Context, tx *txn, cols []column, vals []any) (nhisync.WriteResult, bool) {
	var where []string
	var args []any
	for _, f := range c.kind.Match {
		found := false
		for k, cl := range cols {
			if cl.m.Field == f && vals[k] != nil {
				args = append(args, vals[k])
				where = append(where, cl.col+" = "+c.d.param(len(args)))
				found = true
			}
		}
		if !found {
			return nhisync.WriteResult{}, false
		}
	}
	sel := []string{c.d.raw(c.id)}
	for _, cl := range cols {
		sel = append(sel, c.d.raw(cl.col))
	}
	raw := make([]any, len(sel))
	n := 0
	// Under a savepoint on PostgreSQL (alone): a match value its column's
	// type refuses (an enum's, a number's) fails the look-up, which would
	// abort the transaction and with it the batch's other writes.
	err := c.alone(ctx, tx, func() error {
		rows, err := tx.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+c.table+" WHERE "+strings.Join(where, " AND "), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		dest := make([]any, len(sel))
		for i := range raw {
			dest[i] = &raw[i]
		}
		for rows.Next() {
			if n++; n > 1 {
				return nil
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	switch {
	case err != nil:
		return failed(c.writeUnavail(err, "cannot look for an existing row")), true
	case n > 1:
		return failed(c.errorf(nhisync.EINVALID, "more than one row already holds the new record's match values")), true
	case n == 0:
		return nhisync.WriteResult{}, false
	}
	id, _ := native.Text(raw[0])
	todo, stale, err := compare(cols, raw[1:])
	if err != nil || stale || len(todo) > 0 {
		return nhisync.WriteResult{Status: nhisync.WriteStale, ID: id}, true
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: id}, true
}
