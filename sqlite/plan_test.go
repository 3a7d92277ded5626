package sqlite

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// TestQueriesUseIndexes checks the query plan of every query a pass or a
// person's action runs on the links and records tables, and of a claim's
// pick of queued writes: each searches an
// index (none reads every row), and the paged scans need no sort.
func TestQueriesUseIndexes(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	// Rows as a store in use holds them (most links matched, a few
	// strays) and the statistics ANALYZE gathers (PRAGMA optimize does on
	// Close), so the planner chooses as it does for a real store.
	const n = 300
	first, err := s.NewIDs(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	b := &nhisync.Batch{}
	for i := range int64(n) {
		r := &nhisync.Record{ID: first + i, Kind: "service_account", Key: "aws/bot", MatchKey: fmt.Sprintf("aws\x00bot-%d", i)}
		b.Records = append(b.Records, r)
		for _, sys := range []string{"idp", "cmdb"} {
			b.Links = append(b.Links, &nhisync.Link{System: sys, ExternalID: fmt.Sprintf("u-%d", i), RecordID: r.ID, Status: nhisync.LinkLive})
		}
	}
	for i := range 3 {
		b.Links = append(b.Links, &nhisync.Link{System: "idp", ExternalID: fmt.Sprintf("stray-%d", i), Status: nhisync.LinkUnmatched})
	}
	// Queued writes of two systems, interleaved.
	writes, err := s.NewIDs(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(n) {
		sys := []string{"idp", "cmdb"}[i%2]
		b.Outbox = append(b.Outbox, &nhisync.OutboxWrite{ID: writes + i, System: sys, ExternalID: fmt.Sprintf("u-%d", i), RecordID: first + i,
			Field: "owner", Status: nhisync.OutboxReady, NextAt: time.Unix(i, 0).UTC(), Created: time.Unix(0, 0).UTC()})
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	stray := ` AND l.status IN (?, ?)` + strayFilter
	tests := []struct {
		name   string
		query  string
		args   []any
		want   []string // each in the plan
		sorted bool     // the plan needs no sort
	}{
		{"link heads", scanHeadsSQL, []any{1, "", 10}, []string{"SEARCH links USING PRIMARY KEY (system_id=? AND ext_id>?)"}, true},
		{"links", scanLinksSQL(""), []any{1, "", 10}, []string{"SEARCH l USING PRIMARY KEY (system_id=? AND ext_id>?)", "SEARCH st USING INTEGER PRIMARY KEY"}, true},
		{"stray links", scanLinksSQL(stray), []any{1, "", "unmatched", "disputed", 10}, []string{"SEARCH l USING INDEX links_record (record_id=? AND system_id=? AND ext_id>?)"}, true},
		{"load links", loadLinksSQL(2), loadLinksArgs(nil, "idp", []string{"u-1", "u-2"}), []string{"SEARCH l USING PRIMARY KEY (system_id=? AND ext_id=?)"}, false},
		{"load links by JSON", loadLinksJSONSQL, []any{"idp", `["u-1","u-2"]`}, []string{"SEARCH l USING PRIMARY KEY (system_id=? AND ext_id=?)"}, false},
		{"links of records", recordLinksSQL, []any{"[1,2]"}, []string{"SEARCH l USING INDEX links_record (record_id=?)", "SEARCH l USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"}, false},
		{"stored heads", storedHeadsSQL(2), []any{1, "u-1", "u-2"}, []string{"SEARCH links USING PRIMARY KEY (system_id=? AND ext_id=?)"}, false},
		{"stored keys", storedKeysSQL, []any{"[1,2]"}, []string{"SEARCH records USING"}, false},
		{"record by key", `SELECT id, kind, match_key, key, state FROM records WHERE kind = ? AND match_key = ?`, []any{"service_account", "aws\x00bot-1"}, []string{"SEARCH records USING INDEX records_key (kind=? AND match_key=?)"}, false},
		{"records by keys", recordIDsByKeySQL, []any{"service_account", `["aws\u0000bot-1","aws\u0000bot-2"]`}, []string{"SEARCH records USING COVERING INDEX records_key (kind=? AND match_key=?)"}, false},
		{"records by bound keys", recordIDsByKeysSQL(2), []any{"service_account", "aws\x00bot-1", "aws\x00bot-2"}, []string{"SEARCH records USING COVERING INDEX records_key (kind=? AND match_key=?)"}, false},
		{"claim", claimPickSQL(10), []any{nil, nil, nil, "idp", nhisync.OutboxReady, "9999", "9999"}, []string{"SEARCH outbox USING INDEX outbox_system (system=? AND status=? AND next_at<?)"}, true},
		{"record heads", `SELECT id, kind, match_key FROM records WHERE id > ? ORDER BY id LIMIT ?`, []any{0, 10}, []string{"SEARCH records USING COVERING INDEX records_heads (id>?)"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := queryPlan(t, s, tc.query, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(plan, w) {
					t.Errorf("plan lacks %q:\n%s", w, plan)
				}
			}
			if strings.Contains(plan, "SCAN l ") || strings.HasSuffix(plan, "SCAN l") || strings.Contains(plan, "SCAN links") || strings.Contains(plan, "SCAN records") || strings.Contains(plan, "SCAN outbox") {
				t.Errorf("the query reads every row:\n%s", plan)
			}
			if strings.Contains(plan, "AUTOMATIC") {
				t.Errorf("the query builds an index of every row:\n%s", plan)
			}
			if tc.sorted && strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("the paged scan sorts:\n%s", plan)
			}
		})
	}
}

// queryPlan returns the details of EXPLAIN QUERY PLAN, one per line.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
