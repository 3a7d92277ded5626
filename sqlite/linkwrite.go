package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
	sqlite3 "modernc.org/sqlite/lib"
)

// linkWriter upserts a batch's links inside a commit's transaction.
type linkWriter struct {
	s *Store
	// stage: the bulk window is open, links are new and go to
	// links_stage (bulk.go).
	stage bool
	// systems are the ids of the batch's systems, cached by the store
	// once the transaction commits (an id a rolled-back commit inserted is
	// never cached: another may take it).
	systems map[string]int64
	// inserted are the systems this transaction added: none of their
	// links exists yet.
	inserted map[string]bool
	// states holds the encoded state of each of the batch's links.
	states *states
	// log is the commit's part in the store's log of link writes, once
	// it writes links outside the bulk window (linkgen.go).
	log *linkCommit
}

// state returns the encoded state of the batch's link i, as an argument
// pointing to it (bindable).
func (w *linkWriter) state(i int) *[]byte { return w.states.linkRef(i) }

// statusArgs are the known link statuses as arguments: a string put in an
// argument is copied into memory of its own, each row's again.
var statusArgs = func() []any {
	args := make([]any, len(linkStatuses))
	for i, st := range linkStatuses {
		args[i] = string(st)
	}
	return args
}()

// statusArg returns s as an argument.
func statusArg(s nhisync.LinkStatus) any {
	for i, st := range linkStatuses {
		if st == s {
			return statusArgs[i]
		}
	}
	return string(s)
}

// hashArg returns a link's hash as an argument pointing to it, or nil
// (NULL) when it has none.
func hashArg(l *nhisync.Link) any {
	if l.Hash == nil {
		return nil
	}
	return &l.Hash
}

// write upserts the batch's links in key order (a later row of the same
// link wins), each with its state: a new link's state under the next
// free link_state id, an existing link's under the id it has.
func (w *linkWriter) write(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	if len(b.Links) == 0 {
		return nil
	}
	w.systems, w.inserted = map[string]int64{}, map[string]bool{}
	for _, l := range b.Links {
		if _, ok := w.systems[l.System]; ok {
			continue
		}
		id, err := w.systemID(ctx, tx, l.System)
		if err != nil {
			return fmt.Errorf("system %s: %w", l.System, err)
		}
		w.systems[l.System] = id
	}
	if w.stage {
		return w.writeStaged(ctx, tx, b)
	}
	// Key order makes the B-tree insertions of one batch local; a stable
	// sort keeps a link's rows in batch order, and the last is kept. Links
	// are kept by their index in the batch, which names their state.
	order := make([]int, len(b.Links))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int {
		lx, ly := b.Links[x], b.Links[y]
		return cmp.Or(cmp.Compare(w.systems[lx.System], w.systems[ly.System]), strings.Compare(lx.ExternalID, ly.ExternalID))
	})
	kept := order[:0]
	for i, x := range order {
		if i+1 < len(order) && b.Links[order[i+1]].System == b.Links[x].System && b.Links[order[i+1]].ExternalID == b.Links[x].ExternalID {
			continue
		}
		kept = append(kept, x)
	}
	links := make([]*nhisync.Link, len(kept))
	for i, x := range kept {
		links[i] = b.Links[x]
	}
	log, err := w.s.links.begin(ctx, tx)
	if err != nil {
		return err
	}
	w.log = log
	stored, err := w.storedHeads(ctx, tx, links)
	if err != nil {
		return err
	}
	// Logged before they are written: a kept head loaded while this
	// commit runs is read again by the next.
	log.wrote(links)
	stateIDs := make([]int64, len(links))
	for i := range stored {
		stateIDs[i] = stored[i].stateID
	}
	// States in id order: a first pass's new ones are appended.
	byID := make([]int, len(links))
	for i := range byID {
		byID[i] = i
	}
	slices.SortFunc(byID, func(x, y int) int { return cmp.Compare(stateIDs[x], stateIDs[y]) })
	err = insert{
		head: `INSERT INTO link_state (id, state) VALUES `,
		cols: 2,
		tail: `ON CONFLICT (id) DO UPDATE SET state = excluded.state`,
	}.run(ctx, tx, len(byID), func(args []any, i int) []any {
		return append(args, &stateIDs[byID[i]], w.state(kept[byID[i]]))
	}, nil)
	if err != nil {
		return err
	}
	// A link's head is written only when it changed, and its record only
	// when that changed: an upsert that sets record_id, even to the value
	// it has, deletes and reinserts the link's links_record entry (a
	// random page each, written to the WAL) and checks the record exists.
	// Most links of a record decided again are as they were (a pass
	// rewrites all of a changed record's links), and the others mostly
	// change their hash or status only. (Same states need no such care:
	// SQLite leaves a page alone when a row is rewritten as it was.)
	var moved, heads []int
	for i, l := range links {
		switch h := &stored[i]; {
		case !h.exists || h.recordID != l.RecordID:
			moved = append(moved, i)
		case h.status != string(l.Status) || string(h.hash) != string(l.Hash) || (h.hash == nil) != (l.Hash == nil):
			heads = append(heads, i)
		}
	}
	// Heads the pass reads (ScanLinkHeads) change only here: a commit
	// that rewrites links as they were keeps the version.
	if len(moved)+len(heads) > 0 {
		if err := newLinksVersion(ctx, tx); err != nil {
			return err
		}
	}
	linkRow := func(ix []int) func(args []any, i int) []any {
		return func(args []any, i int) []any {
			l := links[ix[i]]
			return append(args, w.systems[l.System], &l.ExternalID, nullIDRef(&l.RecordID), statusArg(l.Status), hashArg(l), &stateIDs[ix[i]])
		}
	}
	linkErr := func(ix []int) func(i int, err error) error {
		return func(i int, err error) error { return linkError(links[ix[i]], err) }
	}
	err = insert{
		head: `INSERT INTO links (system_id, ext_id, record_id, status, hash, state_id) VALUES `,
		cols: 6,
		tail: `ON CONFLICT (system_id, ext_id) DO UPDATE SET status = excluded.status, hash = excluded.hash`,
	}.run(ctx, tx, len(heads), linkRow(heads), linkErr(heads))
	if err != nil {
		return err
	}
	return insert{
		head: `INSERT INTO links (system_id, ext_id, record_id, status, hash, state_id) VALUES `,
		cols: 6,
		tail: `ON CONFLICT (system_id, ext_id) DO UPDATE SET record_id = excluded.record_id, status = excluded.status, hash = excluded.hash`,
	}.run(ctx, tx, len(moved), linkRow(moved), linkErr(moved))
}

// writeStaged appends new links to links_stage under their state ids
// (the next free ones, in batch order) and their states to link_state,
// and names them in one row of links_stage_runs with the range of their
// records: inside the bulk window every link is new and written once, so
// nothing is looked up, and each B-tree is appended to.
func (w *linkWriter) writeStaged(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	links := b.Links
	if err := stagedRecordsExist(ctx, tx, b); err != nil {
		return err
	}
	if err := newLinksVersion(ctx, tx); err != nil {
		return err
	}
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM link_state`).Scan(&next); err != nil {
		return err
	}
	// next is link_state's largest id plus one: SQLite hands the states
	// their ids. The first link is staged under its state id; it is then
	// the stage's largest (every staged link's state is older), and SQLite
	// hands the others theirs.
	err := insert{
		head: `INSERT INTO link_state (state) VALUES `,
		cols: 1,
		next: next,
	}.run(ctx, tx, len(links), func(args []any, i int) []any {
		return append(args, w.state(i))
	}, nil)
	if err != nil {
		return err
	}
	stage := func(off int) func(args []any, i int) []any {
		return func(args []any, i int) []any {
			l := links[off+i]
			return append(args, w.systems[l.System], &l.ExternalID, nullIDRef(&l.RecordID), statusArg(l.Status), hashArg(l))
		}
	}
	stageErr := func(off int) func(i int, err error) error {
		return func(i int, err error) error { return linkError(links[off+i], err) }
	}
	err = insert{
		head: `INSERT INTO links_stage (state_id, system_id, ext_id, record_id, status, hash) VALUES `,
		cols: 6,
		seq:  func(int) int64 { return next },
	}.run(ctx, tx, 1, stage(0), stageErr(0))
	if err != nil {
		return err
	}
	err = insert{
		head: `INSERT INTO links_stage (system_id, ext_id, record_id, status, hash) VALUES `,
		cols: 5,
		next: next + 1,
	}.run(ctx, tx, len(links)-1, stage(1), stageErr(1))
	if err != nil {
		return err
	}
	var lo, hi int64
	for _, l := range links {
		if id := l.RecordID; id != 0 {
			if lo == 0 || id < lo {
				lo = id
			}
			hi = max(hi, id)
		}
	}
	if lo == 0 {
		return nil // no record to find these links by
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO links_stage_runs (first_state, last_state, min_record, max_record) VALUES (?, ?, ?, ?)`,
		next, next+int64(len(links))-1, lo, hi)
	return err
}

// stagedRecordsExist returns EINVALID, naming the link, when one of b's
// links names a record that is neither in b nor stored: links_stage has
// no foreign keys (00011_stage_unchecked.sql), so the commit checks what
// they checked. A first pass's links name their batch's records, so it
// mostly looks nothing up. It runs after the batch's records are written.
func stagedRecordsExist(ctx context.Context, tx *sql.Tx, b *nhisync.Batch) error {
	inBatch := make(map[int64]bool, len(b.Records))
	for _, r := range b.Records {
		inBatch[r.ID] = true
	}
	var others []int64
	for _, l := range b.Links {
		if l.RecordID != 0 && !inBatch[l.RecordID] {
			others = append(others, l.RecordID)
			inBatch[l.RecordID] = true // asked once
		}
	}
	if len(others) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT value FROM json_each(?) WHERE value NOT IN (SELECT id FROM records)`, string(appendIDs(nil, others)))
	if err != nil {
		return err
	}
	missing := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		missing[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range b.Links {
		if missing[l.RecordID] {
			return &nhisync.Error{Code: nhisync.EINVALID, Message: fmt.Sprintf("link %s/%s: record %d does not exist", l.System, l.ExternalID, l.RecordID)}
		}
	}
	return nil
}

// linkError names the link a statement failed on.
func linkError(l *nhisync.Link, err error) error {
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return &nhisync.Error{Code: nhisync.EINVALID, Message: fmt.Sprintf("link %s/%s: record %d does not exist", l.System, l.ExternalID, l.RecordID), Err: err}
	}
	return fmt.Errorf("link %s/%s: %w", l.System, l.ExternalID, err)
}

// systemID returns the id of the system named name, adding it to
// link_systems when no link of it was stored before.
func (w *linkWriter) systemID(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	if id, ok := w.s.cachedSystem(name); ok {
		return id, nil
	}
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM link_systems WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		w.inserted[name] = true
		err = tx.QueryRowContext(ctx, `INSERT INTO link_systems (name) VALUES (?) RETURNING id`, name).Scan(&id)
	}
	return id, err
}

// storedHead is what the links table holds of a link: its head and the
// id of its state.
type storedHead struct {
	exists   bool
	stateID  int64
	recordID int64
	status   string
	hash     []byte
}

// storedHeads returns, for each of links (sorted by key, no key twice),
// its stored head and the link_state id of its state: the one an existing
// link has, else the next free one, in key order. A link this store
// loaded (LoadRecords, LoadLinks) brings its head along (Link.Stored):
// a pass's changed records were loaded to be decided just before, so only
// the links made anew, or another store's, are read here, and those a
// commit wrote since their load (w.log: a commit of this store or of
// another process between an outcome's load and its commit).
func (w *linkWriter) storedHeads(ctx context.Context, tx *sql.Tx, links []*nhisync.Link) ([]storedHead, error) {
	heads := make([]storedHead, len(links))
	// ask holds the indexes of the links to read, in key order.
	ask := make([]int, 0, len(links))
	for i, l := range links {
		if st := l.Stored; st != nil && st.By == w.s.token && st.System == l.System && st.ExternalID == l.ExternalID && w.log.fresh(st.Gen, l.System, l.ExternalID) {
			heads[i] = storedHead{exists: true, stateID: st.StateID, recordID: st.RecordID, status: string(st.Status), hash: st.Hash}
			continue
		}
		ask = append(ask, i)
	}
	w.s.headsRead.Add(int64(len(ask)))
	const chunk = 500
	args := make([]any, 0, 1+min(chunk, len(ask)))
	for start := 0; start < len(ask); {
		sys := links[ask[start]].System
		end := start + 1
		for end < len(ask) && end-start < chunk && links[ask[end]].System == sys {
			end++
		}
		part := ask[start:end]
		if !w.inserted[sys] {
			args = append(args[:0], w.systems[sys])
			for _, i := range part {
				args = append(args, links[i].ExternalID)
			}
			rows, err := tx.QueryContext(ctx, storedHeadsSQL(len(part)), args...)
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var ext string
				var h storedHead
				var rec sql.NullInt64
				if err := rows.Scan(&ext, &h.stateID, &rec, &h.status, &h.hash); err != nil {
					rows.Close()
					return nil, err
				}
				h.exists, h.recordID = true, rec.Int64
				if k, ok := slices.BinarySearchFunc(part, ext, func(i int, ext string) int { return strings.Compare(links[i].ExternalID, ext) }); ok {
					heads[part[k]] = h
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
		start = end
	}
	if !slices.ContainsFunc(heads, func(h storedHead) bool { return !h.exists }) {
		return heads, nil
	}
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM link_state`).Scan(&next); err != nil {
		return nil, err
	}
	for i := range heads {
		if !heads[i].exists {
			next++
			heads[i].stateID = next
		}
	}
	return heads, nil
}

// storedHeadsSQL selects the heads and state ids of n links of one system.
func storedHeadsSQL(n int) string {
	return `SELECT ext_id, state_id, record_id, status, hash FROM links WHERE system_id = ? AND ext_id IN (?` + strings.Repeat(`, ?`, n-1) + `)`
}

// cachedSystem returns the committed id of a system, if it is cached.
func (s *Store) cachedSystem(name string) (int64, bool) {
	s.sysMu.Lock()
	defer s.sysMu.Unlock()
	id, ok := s.sysIDs[name]
	return id, ok
}

// cacheSystems remembers the ids of systems a transaction that committed
// wrote links of.
func (s *Store) cacheSystems(ids map[string]int64) {
	if len(ids) == 0 {
		return
	}
	s.sysMu.Lock()
	defer s.sysMu.Unlock()
	if s.sysIDs == nil {
		s.sysIDs = map[string]int64{}
	}
	for name, id := range ids {
		s.sysIDs[name] = id
	}
}
