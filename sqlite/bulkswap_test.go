package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// TestBulkWindowMovesEveryValue: the links moveSorted makes links' rows
// are the staged ones value for value and type for type, whatever the
// stage holds: no record or hash (NULL), an empty hash, external ids that
// differ only in case or trailing space, long enough to spill to overflow
// pages, not ASCII, state ids past 32 bits; each is found by its key;
// the file is consistent; and a head scan and a reader that read links
// before the swap read the moved links after it.
func TestBulkWindowMovesEveryValue(t *testing.T) {
	movesEveryValue(t, openTest(t))
}

// TestBulkWindowMovesEveryValueDefensive: on a writer in SQLite's
// defensive mode, which refuses the root-page swap, the window still
// closes, every value moved (by moveInserted).
func TestBulkWindowMovesEveryValueDefensive(t *testing.T) {
	saved := writerCache
	writerCache += "&_defensive=1"
	s := openTest(t)
	writerCache = saved
	ctx := t.Context()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA writable_schema = ON`); err != nil {
		t.Fatal(err)
	}
	_, refused := conn.ExecContext(ctx, `UPDATE sqlite_schema SET rootpage = rootpage WHERE name = 'links'`)
	if _, err := conn.ExecContext(ctx, `PRAGMA writable_schema = RESET`); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if refused == nil {
		t.Fatal("the writer wrote sqlite_schema: defensive mode is not on")
	}
	movesEveryValue(t, s)
}

func movesEveryValue(t *testing.T, s *Store) {
	ctx := t.Context()
	if open, err := s.BeginBulk(ctx); err != nil || !open {
		t.Fatalf("BeginBulk = %v, %v", open, err)
	}
	if err := s.ScanLinkHeads(ctx, "", func(nhisync.LinkHead) error { return nil }); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO link_systems (id, name) VALUES (1, 'idp'), (7, 'cmdb')`)
	exec(`INSERT INTO records (id, kind, match_key, key, state) VALUES (1, 'k', 'm1', 'k1', x''), (5000000000, 'k', 'm2', 'k2', x'')`)
	ids := []string{"a", "A", "a ", "é", "\u00e9x", "a\x00b", strings.Repeat("long", 3000), strings.Repeat("z", 600)}
	state := int64(1)
	for i := range 300 {
		ids = append(ids, fmt.Sprintf("id-%05d", i*7919%300))
	}
	for i, id := range ids {
		for _, sys := range []int64{7, 1} {
			var rec, hash any
			switch i % 4 {
			case 0:
				rec, hash = int64(1), []byte{0, 1, 2}
			case 1:
				rec, hash = nil, []byte{}
			case 2:
				rec, hash = int64(5000000000), nil
			}
			st := state
			if i%5 == 0 {
				st += 1 << 40
			}
			exec(`INSERT INTO link_state (id, state) VALUES (?, x'00')`, st)
			exec(`INSERT INTO links_stage (state_id, system_id, ext_id, record_id, status, hash) VALUES (?, ?, ?, ?, ?, ?)`,
				st, sys, id, rec, []string{"live", "gone", "unmatched"}[i%3], hash)
			state++
		}
	}
	exec(`INSERT INTO links_stage_runs (first_state, last_state, min_record, max_record) SELECT min(state_id), max(state_id), 1, 5000000000 FROM links_stage`)
	const cols = `system_id, ext_id, record_id, status, hash, state_id, typeof(system_id), typeof(ext_id), typeof(record_id), typeof(status), typeof(hash), typeof(state_id), length(hash)`
	rowsOf := func(table string) []string {
		t.Helper()
		rows, err := s.w.QueryContext(ctx, `SELECT `+cols+` FROM `+table+` ORDER BY system_id, ext_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			v := make([]any, 13)
			p := make([]any, 13)
			for i := range v {
				p[i] = &v[i]
			}
			if err := rows.Scan(p...); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%#v", v))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	staged := rowsOf(`links_stage`)
	var before int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links`).Scan(&before); err != nil || before != 0 {
		t.Fatalf("links before EndBulk: %d, %v", before, err)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	moved := rowsOf(`links`)
	if !slices.Equal(staged, moved) {
		t.Errorf("links differ from the stage: %d rows staged, %d moved", len(staged), len(moved))
		for i := range min(len(staged), len(moved)) {
			if staged[i] != moved[i] {
				t.Errorf("first difference, row %d:\nstaged %s\nmoved  %s", i, staged[i], moved[i])
				break
			}
		}
	}
	for _, sys := range []int64{1, 7} {
		for _, id := range ids {
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links WHERE system_id = ? AND ext_id = ?`, sys, id).Scan(&n); err != nil || n != 1 {
				t.Fatalf("link %d/%.20q by its key: %d, %v", sys, id, n, err)
			}
		}
	}
	var heads int
	if err := s.ScanLinkHeads(ctx, "", func(nhisync.LinkHead) error { heads++; return nil }); err != nil || heads != 2*len(ids) {
		t.Errorf("head scan after EndBulk: %d heads, %v; want %d", heads, err, 2*len(ids))
	}
	for _, q := range []string{`PRAGMA integrity_check`, `PRAGMA foreign_key_check`} {
		var ok string
		err := s.r.QueryRowContext(ctx, q).Scan(&ok)
		if q == `PRAGMA foreign_key_check` {
			if err == nil {
				t.Errorf("foreign_key_check: %q", ok)
			}
			continue
		}
		if err != nil || ok != "ok" {
			t.Errorf("%s = %q, %v", q, ok, err)
		}
	}
	// A commit after the swap writes into links' new B-tree.
	if err := s.Commit(ctx, &nhisync.Batch{Links: []*nhisync.Link{{System: "idp", ExternalID: "after", Status: nhisync.LinkUnmatched}}}); err != nil {
		t.Fatal(err)
	}
	var ok string
	if err := s.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check after a commit = %q, %v", ok, err)
	}
}

// TestBulkWindowCloseCancelled: a close whose context ends after the
// root pages were swapped (database/sql then rolls the transaction back
// on its own, and the driver keeps the connection) leaves the writer's
// schema not writable, links empty and the file consistent, and the next
// EndBulk moves the links. (A check of fe0845a: the reset of
// writable_schema runs through the transaction, which database/sql has
// rolled back by then; the writer still ends with the schema not
// writable.)
func TestBulkWindowCloseCancelled(t *testing.T) {
	s := openTest(t)
	if open, err := s.BeginBulk(t.Context()); err != nil || !open {
		t.Fatalf("BeginBulk = %v, %v", open, err)
	}
	stageLinks(t, s, 50)
	ctx, cancel := context.WithCancel(t.Context())
	closeWindowFault = func(at string, conn *sql.Conn) error {
		if at != "swapped" {
			return nil
		}
		cancel()
		// Until database/sql has rolled the transaction back: the
		// index the swap gave links' root is gone again.
		for {
			var n int
			if err := conn.QueryRowContext(context.Background(), `SELECT count(*) FROM sqlite_schema WHERE name = ?`, movedIndex).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			runtime.Gosched()
		}
	}
	err := s.EndBulk(ctx)
	closeWindowFault = func(string, *sql.Conn) error { return nil }
	if err == nil {
		t.Fatal("EndBulk cancelled after the swap succeeded")
	}
	var writable, moved int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA writable_schema`).Scan(&writable); err != nil || writable != 0 {
		t.Errorf("writer's writable_schema after a cancelled EndBulk = %d, %v; want 0", writable, err)
	}
	if err := s.w.QueryRowContext(t.Context(), `SELECT count(*) FROM links`).Scan(&moved); err != nil || moved != 0 {
		t.Errorf("links after a cancelled EndBulk: %d rows, %v; want none", moved, err)
	}
	var ok string
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check after a cancelled EndBulk = %q, %v", ok, err)
	}
	if err := s.EndBulk(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(t.Context(), `SELECT count(*) FROM links`).Scan(&moved); err != nil || moved != 150 {
		t.Errorf("links after EndBulk again: %d rows, %v; want 150", moved, err)
	}
}
