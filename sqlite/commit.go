package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nhisync/nhisync"
	sqlite3 "modernc.org/sqlite/lib"
)

// Commit writes the batch in one IMMEDIATE transaction: records, links,
// conflicts, quarantine items, approvals and outbox writes are upserted,
// OutboxDone rows deleted, systems and meta set, then the audit entries
// appended and sealed. A record is written with its golden fields only;
// its Links and open work travel in their own members of the batch.
// Within a batch a later row of the same record, link or item wins.
// On success each *AuditEntry of the batch holds its
// Seq, PrevHash and Hash; on failure nothing is written and the entries
// are left as they were.
//
// It returns EINVALID for a caller bug (an item or record with ID 0, a link
// without system or external id, a link to a record that does not exist,
// a nil member), ECONFLICT when a record would take the match key of
// another record, the fence's lease was lost or the batch's outbox claim
// no longer holds its writes, and EINTERNAL for storage failures.
func (s *Store) Commit(ctx context.Context, b *nhisync.Batch) error {
	const op = "sqlite.Commit"
	if b == nil || b.Empty() {
		return nil
	}
	if err := b.Check(); err != nil {
		err.Op = op
		return err
	}
	if err := s.unsyncedErr(op); err != nil {
		return err
	}
	saved := make([]nhisync.AuditEntry, len(b.Audit))
	for i, e := range b.Audit {
		saved[i] = *e
	}
	notary := s.getNotary()
	cp, err := s.commit(ctx, b, notary)
	s.commitDone()
	if err != nil {
		for i, e := range b.Audit {
			e.Seq, e.PrevHash, e.Hash, e.Time = saved[i].Seq, saved[i].PrevHash, saved[i].Hash, saved[i].Time
		}
		return internal(op, err)
	}
	if cp != nil && !s.holdCheckpoint(cp) {
		return publish(op, notary, cp)
	}
	return nil
}

// publish copies committed checkpoints (at least one) to audit.publish.
func publish(op string, notary nhisync.Notary, cps ...*nhisync.Checkpoint) error {
	if err := notary.Publish(cps...); err != nil {
		what := fmt.Sprintf("checkpoint (size %d)", cps[0].Size)
		if len(cps) > 1 {
			what = fmt.Sprintf("%d checkpoints (sizes %d to %d)", len(cps), cps[0].Size, cps[len(cps)-1].Size)
		}
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: fmt.Sprintf(
			"the decisions and their %s are committed, but publishing failed: %s; fix audit.publish, then run again (the next checkpoint is published with it)",
			what, nhisync.ErrorMessage(err)), Err: err}
	}
	return nil
}

func (s *Store) commit(ctx context.Context, b *nhisync.Batch, notary nhisync.Notary) (cp *nhisync.Checkpoint, err error) {
	s.stmts.prepare(ctx, s.w)
	ctx = withStmts(ctx, &s.stmts)
	conn, err := s.w.Conn(ctx)
	if cerr := s.closedErr(); cerr != nil {
		// Checked under the writer's connection: Close finalizes the raw
		// statements once it holds it (Store.closing).
		err = cerr
	}
	if conn != nil {
		defer conn.Close()
	}
	if err != nil {
		return nil, err
	}
	ctx = withRaw(ctx, s.raw.of(conn))
	// Without cancellation: database/sql would roll the transaction back
	// on its own goroutine when ctx ends, under a statement running below
	// it (rawexec.go); each statement and the commit check ctx instead.
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if err = checkFence(ctx, tx, b.Fence); err != nil {
		return nil, err
	}
	if err = checkClaim(ctx, tx, b); err != nil {
		return nil, err
	}
	seal := startSeal(ctx, tx, b, notary)
	defer seal.done()
	states := encodeStates(b)
	defer states.done()
	items := encodeItemData(b)
	defer items.wait()
	bulk := s.inBulk()
	// In the bulk window every record is new: none has a key to keep.
	states.allNew = bulk
	links := &linkWriter{s: s, stage: bulk, states: states}
	// Once the transaction ends, committed or not, loads beginning after
	// it keep heads that this commit's link writes do not make stale.
	defer func() { links.log.end() }()
	steps := []func(context.Context, *sql.Tx, *nhisync.Batch) error{
		states.writeRecords, links.write, items.writeConflicts, items.writeQuarantine, items.writeApprovals,
		items.writeOutbox, deleteOutbox, items.writeSystems, writeMeta,
	}
	for _, step := range steps {
		if err = step(ctx, tx, b); err != nil {
			return nil, err
		}
	}
	if cp, err = seal.write(ctx, tx); err != nil {
		return nil, err
	}
	if err = ctx.Err(); err != nil {
		return nil, err
	}
	if err = tx.Commit(); err != nil {
		return nil, err
	}
	s.cacheSystems(links.systems)
	return cp, nil
}

// rowsPerInsert is how many rows one INSERT statement carries: statement
// overhead, not SQLite, dominates single-row inserts of small rows. 256
// rows a statement cost a first pass's commits 3% less CPU than 64 (1,500
// links in 10 statements instead of 26; the committing thread's CPU, the
// same batches committed in turn to two stores, seven runs; the same code
// in both stores differed by under 1%). Records go recordRows a
// statement: their states are encoded beside the commit in chunks of that
// many (prestate.go), and the first statement waits for its chunk.
const rowsPerInsert = 256

// recordRows is how many records one INSERT statement carries.
const recordRows = 64

// insert is a multi-row INSERT (or upsert) of one table.
type insert struct {
	head string // INSERT INTO t (cols) VALUES
	cols int
	tail string // ON CONFLICT … (may be empty)
	// seq, when set, gives the first column of row i, which runs up by one
	// from row to row: a statement binds its first row's once (?1) and
	// SQLite adds the row's place to it, and row appends the other
	// columns only. Binding an argument costs about as much as SQLite's
	// insert of a small row's column, and a first pass binds millions.
	seq func(i int) int64
	// rows, when set, is how many rows a statement carries instead of
	// rowsPerInsert.
	rows int
	// next, when set, is the rowid SQLite gives row 0 of a table whose
	// head leaves the rowid out: the table's largest rowid plus one, read
	// in the same transaction (the store has one writer). Row i gets
	// next+i: SQLite appends each row after the largest, without the seek
	// a bound rowid costs (its unique check; a first pass appends
	// millions: BenchmarkBulkCommit's own-cpu-ns/commit 7.7 → 7.0 ms for
	// link_state, links_stage and audit), and run checks that each
	// statement's last row got the rowid it was meant to.
	next int64
}

// group returns the VALUES group of a statement's row k.
func (in insert) group(k int) string {
	if in.seq == nil {
		return "(" + strings.Repeat("?, ", in.cols-1) + "?)"
	}
	first := "?1"
	if k > 0 {
		first = "?1 + " + strconv.Itoa(k)
	}
	return "(" + first + strings.Repeat(", ?", in.cols-1) + ")"
}

// run inserts n rows: row appends the arguments of row i to args. When a
// statement fails and explain is set, the rows of that statement are tried
// one by one so that explain can name the row at fault (SQLite undoes a
// failed statement whole, so the retried rows are not doubled), unless
// the failure may have ended the transaction (endsTx).
//
// Rows go rowsPerInsert (or in.rows) to a statement, and the rest in
// statements of half as many, a quarter, … 1 row (its binary digits): so
// a table has a few statements whatever a batch holds, and a commit whose
// context carries the store's statement cache (Store.commit) prepares
// none of them again.
func (in insert) run(ctx context.Context, tx *sql.Tx, n int, row func(args []any, i int) []any, explain func(i int, err error) error) error {
	if n == 0 {
		return nil
	}
	cache := stmtsOf(ctx)
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	prepare := func(rows int) (*sql.Stmt, error) {
		if st := stmts[rows]; st != nil {
			return st, nil
		}
		q := in.query(rows)
		var st *sql.Stmt
		if pre := cache.get(q); pre != nil {
			st = tx.StmtContext(ctx, pre)
		} else {
			var err error
			if st, err = tx.PrepareContext(ctx, q); err != nil {
				return nil, err
			}
		}
		stmts[rows] = st
		return st, nil
	}
	// exec runs the statement of rows rows and returns the rowid of its
	// last row (when in.next is set): below database/sql when the commit
	// carries the writer's raw connection (rawexec.go) and it binds every
	// argument.
	raw := rawOf(ctx)
	exec := func(rows int, args []any) (int64, error) {
		if raw != nil && bindable(args) {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			rawExecs.Add(1)
			return raw.exec(in.query(rows), args)
		}
		sqlExecs.Add(1)
		st, err := prepare(rows)
		if err != nil {
			return 0, err
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil || in.next == 0 {
			return 0, err
		}
		return res.LastInsertId()
	}
	most := rowsPerInsert
	if in.rows > 0 {
		most = in.rows
	}
	args := make([]any, 0, in.cols*min(n, most))
	for start := 0; start < n; {
		rows := most
		for rows > n-start {
			rows /= 2
		}
		end := start + rows
		args = in.first(args[:0], start)
		for i := start; i < end; i++ {
			args = row(args, i)
		}
		id, err := exec(rows, args)
		if err == nil {
			err = in.check(id, end-1)
		}
		if err != nil {
			if explain == nil || end-start == 1 || ctx.Err() != nil || endsTx(err) {
				if explain != nil {
					return explain(start, err)
				}
				return err
			}
			for i := start; i < end; i++ {
				id, err := exec(1, row(in.first(args[:0], i), i))
				if err == nil {
					err = in.check(id, i)
				}
				if err != nil {
					return explain(i, err)
				}
			}
			return err // the statement failed but no single row did
		}
		start = end
	}
	return nil
}

// endsTx reports whether err is a failure after which SQLite may have
// rolled the whole transaction back rather than the statement alone (a
// full disk, an I/O error, memory, a lock, an interrupt: "Response To
// Errors Within A Transaction" in SQLite's documentation). Its rows are
// not tried one by one then: with the transaction gone each would commit
// on its own, and the commit that fails would leave them written.
func endsTx(err error) bool {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT:
		return true
	}
	return false
}

// queryShape is what an insert's statement text of some rows is made of.
type queryShape struct {
	head, tail string
	cols, rows int
	seq        bool
}

// queries keeps the statement text of each shape: a 256-row statement's
// text is a few KiB, and building it again for every statement of every
// commit was 7% of a first pass's commit (BenchmarkBulkCommit's profile).
var queries sync.Map // queryShape → string

// query returns the text of in's statement of rows rows.
func (in insert) query(rows int) string {
	shape := queryShape{head: in.head, tail: in.tail, cols: in.cols, rows: rows, seq: in.seq != nil}
	if q, ok := queries.Load(shape); ok {
		return q.(string)
	}
	var q strings.Builder
	q.WriteString(in.head)
	for k := range rows {
		if k > 0 {
			q.WriteString(", ")
		}
		q.WriteString(in.group(k))
	}
	q.WriteString(" " + in.tail)
	queries.Store(shape, q.String())
	return q.String()
}

// check returns an error when the table's rowids were not handed out from
// in.next: row i, the last of a statement, was to get next+i, and got id.
func (in insert) check(id int64, i int) error {
	if in.next == 0 {
		return nil
	}
	if want := in.next + int64(i); id != want {
		return fmt.Errorf("%s: row %d took rowid %d, not %d", strings.TrimSpace(in.head), i, id, want)
	}
	return nil
}

// first appends a statement's first argument, the seq of its first row i,
// when the rows have one.
func (in insert) first(args []any, i int) []any {
	if in.seq == nil {
		return args
	}
	return append(args, in.seq(i))
}

// stmtCache keeps the INSERT statements commits run, prepared on the
// writer connection: preparing a 256-row statement costs as much as
// running it. A statement a transaction wants that is not prepared yet is
// prepared in that transaction and, before the next one begins, on the
// connection (inside a transaction the one writer connection is taken).
type stmtCache struct {
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	want   map[string]bool
	closed bool
}

type stmtsKey struct{}

// withStmts returns ctx carrying c, for insert.run.
func withStmts(ctx context.Context, c *stmtCache) context.Context {
	return context.WithValue(ctx, stmtsKey{}, c)
}

func stmtsOf(ctx context.Context) *stmtCache {
	c, _ := ctx.Value(stmtsKey{}).(*stmtCache)
	return c
}

// maxStmts bounds the cache (a dozen tables, 9 sizes each).
const maxStmts = 256

// get returns the prepared statement of q, or nil and remembers that q is
// wanted.
func (c *stmtCache) get(q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[q]; st != nil {
		return st
	}
	if c.want == nil {
		c.want = map[string]bool{}
	}
	if len(c.stmts)+len(c.want) < maxStmts {
		c.want[q] = true
	}
	return nil
}

// prepare prepares the wanted statements on db; one that fails (its table
// is gone: the bulk window's stage) is not retried. It holds no lock while
// it waits for the connection: another commit's transaction may hold it
// and look statements up meanwhile.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB) {
	c.mu.Lock()
	var want []string
	for q := range c.want {
		want = append(want, q)
	}
	clear(c.want)
	c.mu.Unlock()
	for _, q := range want {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.stmts == nil {
			c.stmts = map[string]*sql.Stmt{}
		}
		if c.closed || c.stmts[q] != nil {
			st.Close()
		} else {
			c.stmts[q] = st
		}
		c.mu.Unlock()
	}
}

// close closes the prepared statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts, c.closed = nil, true
}

// writeRecords upserts the batch's records with their encoded states (a
// later row of the same record wins). A record whose kind and match key
// are those it has keeps them: an upsert that sets them, even to the
// values they have, deletes and reinserts the record's entries in
// records_key and records_heads (a page each, written to the WAL), and a
// record decided again mostly keeps its key.
func (st *states) writeRecords(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	if len(b.Records) == 0 {
		return nil
	}
	last := make(map[int64]int, len(b.Records))
	ids := make([]int64, 0, len(b.Records))
	for i, r := range b.Records {
		if _, ok := last[r.ID]; !ok {
			ids = append(ids, r.ID)
		}
		last[r.ID] = i
	}
	type key struct{ kind, matchKey string }
	stored := make(map[int64]key, len(ids))
	if !st.allNew {
		rows, err := tx.QueryContext(ctx, storedKeysSQL, string(appendIDs(nil, ids)))
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var k key
			if err := rows.Scan(&id, &k.kind, &k.matchKey); err != nil {
				rows.Close()
				return err
			}
			stored[id] = k
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	var same, moved []int
	for i, r := range b.Records {
		if last[r.ID] != i {
			continue
		}
		if k, ok := stored[r.ID]; ok && k.kind == r.Kind && k.matchKey == r.MatchKey {
			same = append(same, i)
		} else {
			moved = append(moved, i)
		}
	}
	row := func(ix []int) func(args []any, i int) []any {
		return func(args []any, i int) []any {
			r := b.Records[ix[i]]
			return append(args, &r.ID, &r.Kind, &r.MatchKey, &r.Key, st.recordRef(ix[i]))
		}
	}
	explain := func(ix []int) func(i int, err error) error {
		return func(i int, err error) error {
			r := b.Records[ix[i]]
			if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
				return &nhisync.Error{Code: nhisync.ECONFLICT, Message: fmt.Sprintf("record %s (id %d): another record of kind %s has the same match key", r.Name(), r.ID, r.Kind), Err: err}
			}
			return fmt.Errorf("record %d: %w", r.ID, err)
		}
	}
	err := insert{
		head: `INSERT INTO records (id, kind, match_key, key, state) VALUES `,
		cols: 5,
		rows: recordRows,
		tail: `ON CONFLICT (id) DO UPDATE SET key = excluded.key, state = excluded.state`,
	}.run(ctx, tx, len(same), row(same), explain(same))
	if err != nil {
		return err
	}
	return insert{
		head: `INSERT INTO records (id, kind, match_key, key, state) VALUES `,
		cols: 5,
		rows: recordRows,
		tail: `ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, match_key = excluded.match_key, key = excluded.key, state = excluded.state`,
	}.run(ctx, tx, len(moved), row(moved), explain(moved))
}

// storedKeysSQL selects the kind and match key of the records in a JSON
// array of ids.
const storedKeysSQL = `SELECT id, kind, match_key FROM records WHERE id IN (SELECT value FROM json_each(?))`

// nullIDRef stores the ID *id as NULL when it is 0 ("none"), else as an
// argument pointing to it (bindable).
func nullIDRef(id *int64) any {
	if *id == 0 {
		return nil
	}
	return id
}

// jsonData returns v as JSON text; a failure is kept in *failed (the
// first one), which fails the commit.
func jsonData(v any, failed *error) string {
	data, err := json.Marshal(v)
	if err != nil && *failed == nil {
		*failed = err
	}
	return string(data)
}

func (d *itemData) writeConflicts(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	if len(b.Conflicts) == 0 {
		return nil
	}
	d.wait()
	err := insert{
		head: `INSERT INTO conflicts (id, kind, record_id, field, status, systems, data) VALUES `,
		cols: 7,
		tail: `ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, record_id = excluded.record_id, field = excluded.field,
			status = excluded.status, systems = excluded.systems, data = excluded.data`,
	}.run(ctx, tx, len(b.Conflicts), func(args []any, i int) []any {
		c := b.Conflicts[i]
		return append(args, c.ID, c.Kind, c.RecordID, c.Field, c.Status, d.conflictSystems[i], d.conflicts[i])
	}, nil)
	return errors.Join(d.failed, err)
}

func (d *itemData) writeQuarantine(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	if len(b.Quarantine) == 0 {
		return nil
	}
	// wait first: the helper sets d.failed, and Go does not order
	// reading it against a call among the same arguments.
	d.wait()
	return writeItems(ctx, tx, "quarantine", b.Quarantine, d.quarantine, d.failed, func(q *nhisync.QuarantineItem) []any {
		return []any{q.ID, q.Kind, q.RecordID, q.Field, q.System, q.Status}
	})
}

func (d *itemData) writeApprovals(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	if len(b.Approvals) == 0 {
		return nil
	}
	// wait first: the helper sets d.failed, and Go does not order
	// reading it against a call among the same arguments.
	d.wait()
	return writeItems(ctx, tx, "approvals", b.Approvals, d.approvals, d.failed, func(a *nhisync.Approval) []any {
		return []any{a.ID, a.Kind, a.RecordID, a.Field, a.System, a.Status}
	})
}

// writeItems upserts quarantine items or approvals: tables of the same
// shape, their filtered columns from cols and the whole item as JSON
// (data; failed is why one did not encode).
func writeItems[T any](ctx context.Context, tx *sql.Tx, table string, items []T, data []string, failed error, cols func(T) []any) error {
	err := insert{
		head: `INSERT INTO ` + table + ` (id, kind, record_id, field, system, status, data) VALUES `,
		cols: 7,
		tail: `ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, record_id = excluded.record_id, field = excluded.field,
			system = excluded.system, status = excluded.status, data = excluded.data`,
	}.run(ctx, tx, len(items), func(args []any, i int) []any {
		return append(append(args, cols(items[i])...), data[i])
	}, nil)
	return errors.Join(failed, err)
}

func (d *itemData) writeOutbox(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	if len(b.Outbox) == 0 {
		return nil
	}
	d.wait()
	err := insert{
		head: `INSERT INTO outbox (id, system, ext_id, record_id, field, status, next_at, data) VALUES `,
		cols: 8,
		tail: `ON CONFLICT (id) DO UPDATE SET system = excluded.system, ext_id = excluded.ext_id, record_id = excluded.record_id,
			field = excluded.field, status = excluded.status, next_at = excluded.next_at, data = excluded.data,
			claim_token = 0, claim_holder = '', claim_until = ''`,
	}.run(ctx, tx, len(b.Outbox), func(args []any, i int) []any {
		w := b.Outbox[i]
		return append(args, w.ID, w.System, w.ExternalID, w.RecordID, w.Field, w.Status, formatTime(w.NextAt), d.outbox[i])
	}, nil)
	return errors.Join(d.failed, err)
}

func deleteOutbox(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	if len(b.OutboxDone) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))`, string(appendIDs(nil, b.OutboxDone)))
	return err
}

func (d *itemData) writeSystems(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	if len(b.Systems) == 0 {
		return nil
	}
	d.wait()
	err := insert{
		head: `INSERT INTO systems (name, data) VALUES `,
		cols: 2,
		tail: `ON CONFLICT (name) DO UPDATE SET data = excluded.data`,
	}.run(ctx, tx, len(b.Systems), func(args []any, i int) []any {
		return append(args, b.Systems[i].Name, d.systems[i])
	}, nil)
	return errors.Join(d.failed, err)
}

func writeMeta(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	keys := sortedKeys(b.Meta)
	return insert{
		head: `INSERT INTO meta (key, value) VALUES `,
		cols: 2,
		tail: `ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
	}.run(ctx, tx, len(keys), func(args []any, i int) []any {
		return append(args, keys[i], b.Meta[keys[i]])
	}, nil)
}

// NewIDs reserves n consecutive IDs from the one sequence shared by records
// and items and returns the first; the first ID ever handed out is 1. It
// returns EINVALID when n < 1.
func (s *Store) NewIDs(ctx context.Context, n int) (int64, error) {
	const op = "sqlite.NewIDs"
	if n < 1 {
		return 0, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("cannot reserve %d IDs", n)}
	}
	var first int64
	err := s.w.QueryRowContext(ctx, `UPDATE ids SET next = next + ?1 WHERE name = 'id' RETURNING next - ?1`, n).Scan(&first)
	if err != nil {
		return 0, internal(op, err)
	}
	return first, nil
}
