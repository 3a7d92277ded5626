package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/nhisync/nhisync"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// queueInterleaved queues perSystem ready writes of each of systems,
// interleaved by id, all due at base but every third of the last
// system's, due a second later (retried), and returns the last system's
// IDs in next_at, id order: the order a claim takes them in.
func queueInterleaved(t *testing.T, s *Store, systems []string, perSystem int, base time.Time) []int64 {
	t.Helper()
	ctx := t.Context()
	n := perSystem * len(systems)
	first, err := s.NewIDs(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	last := systems[len(systems)-1]
	var now, later []int64
	const chunk = 10000
	for lo := 0; lo < n; lo += chunk {
		b := &nhisync.Batch{}
		for i := lo; i < min(n, lo+chunk); i++ {
			id, sys, next := first+int64(i), systems[i%len(systems)], base
			if sys == last {
				if i/len(systems)%3 == 2 {
					next = base.Add(time.Second)
					later = append(later, id)
				} else {
					now = append(now, id)
				}
			}
			b.Outbox = append(b.Outbox, &nhisync.OutboxWrite{ID: id, System: sys, ExternalID: fmt.Sprintf("u-%d", i), RecordID: int64(i + 1),
				Field: "owner", Status: nhisync.OutboxReady, NextAt: next, Created: base})
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	return append(now, later...)
}

// planNode is a node of EXPLAIN (FORMAT JSON)'s plan.
type planNode struct {
	NodeType      string     `json:"Node Type"`
	Relation      string     `json:"Relation Name"`
	Index         string     `json:"Index Name"`
	ActualRows    float64    `json:"Actual Rows"`
	RemovedFilter float64    `json:"Rows Removed by Filter"`
	Plans         []planNode `json:"Plans"`
}

// walk calls fn on n and every node below it.
func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}

// explainClaim runs the claim's statement as ClaimOutbox would, under
// EXPLAIN ANALYZE in a transaction rolled back (claiming nothing), and
// returns its plan.
func explainClaim(t *testing.T, s *Store, args []any) planNode {
	t.Helper()
	var out []byte
	err := pgx.BeginFunc(t.Context(), s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(t.Context(), `EXPLAIN (ANALYZE, FORMAT JSON) `+claimSQL, args...).Scan(&out); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("EXPLAIN the claim: %v", err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN's plan %s: %v", out, err)
	}
	return plans[0].Plan
}

var errRollback = errors.New("rolled back")

// TestClaimReadsOnlyItsWrites: on a queue of three systems' writes,
// interleaved, the claims of the last system's 2,000 at a time take its
// due writes in next_at, id order, each once, reading none of the other
// systems' writes (outbox_system) and no more of its own than they take,
// without a sort and without a scan of the whole outbox (the UPDATE
// finds the picked writes by id), before and after ANALYZE. By outbox_due
// a claim stepped over the others' writes queued before its own, and the
// UPDATE joined to the picked rows read the whole outbox for each claim.
func TestClaimReadsOnlyItsWrites(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	systems := []string{"idp", "cmdb", "vault"}
	const perSystem, limit = 10000, 2000
	want := queueInterleaved(t, s, systems, perSystem, base)
	now := base.Add(time.Hour)
	check := func(when string) {
		t.Helper()
		plan := explainClaim(t, s, []any{"vault", nhisync.OutboxReady, formatTime(now), formatTime(now), limit, 1, "h", formatTime(now.Add(time.Minute))})
		var picked bool
		plan.walk(func(n planNode) {
			switch {
			case n.NodeType == "Sort" || n.NodeType == "Incremental Sort":
				t.Errorf("%s: the claim sorts (%s): outbox_system gives its writes in order", when, n.NodeType)
			case n.NodeType == "Seq Scan":
				t.Errorf("%s: the claim reads the whole of %s", when, n.Relation)
			case n.Index == "outbox_system":
				picked = true
				if n.NodeType != "Index Scan" || n.ActualRows != limit || n.RemovedFilter != 0 {
					t.Errorf("%s: the claim's pick (%s) read %v rows and filtered out %v, want an Index Scan reading %d, none filtered out", when, n.NodeType, n.ActualRows, n.RemovedFilter, limit)
				}
			case n.Index != "" && n.Index != "outbox_pkey":
				t.Errorf("%s: the claim reads outbox by index %s", when, n.Index)
			}
		})
		if !picked {
			t.Errorf("%s: the claim picks its writes without outbox_system", when)
		}
	}
	check("before ANALYZE")
	if _, err := s.pool.Exec(ctx, `ANALYZE outbox`); err != nil {
		t.Fatal(err)
	}
	check("after ANALYZE")

	var got []int64
	for {
		c, ws, err := s.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "vault", Holder: "h", Now: now, TTL: time.Hour, Limit: limit})
		if err != nil {
			t.Fatalf("ClaimOutbox after %d writes: %v", len(got), err)
		}
		if len(ws) != len(c.IDs) {
			t.Fatalf("ClaimOutbox returned %d writes for %d IDs", len(ws), len(c.IDs))
		}
		if len(c.IDs) == 0 {
			break
		}
		if len(c.IDs) > limit {
			t.Fatalf("ClaimOutbox took %d writes, limit %d", len(c.IDs), limit)
		}
		got = append(got, c.IDs...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the claims took %d writes, want vault's %d once each in next_at, id order", len(got), len(want))
	}
}

// migrateTo runs the store's migrations in the schema of url down (or
// up) to version.
func migrateTo(t *testing.T, url string, version int64) {
	t.Helper()
	s, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(t.Context(), version); err != nil {
		t.Fatalf("migrate down to %d: %v", version, err)
	}
}

// outboxIndexes returns the names of the outbox's indexes in the schema
// of url but its primary key, sorted.
func outboxIndexes(t *testing.T, url string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT indexname FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename = 'outbox' AND indexname <> 'outbox_pkey' ORDER BY indexname`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestMigrateOutboxSystem: a store with writes of three systems queued
// (one system's retried ones due later) migrates down to outbox_due and
// up to outbox_system with every write kept, and a claim then takes one
// system's due writes in next_at, id order.
func TestMigrateOutboxSystem(t *testing.T) {
	url := dbURL(t, newSchema(t))
	s := openURL(t, url)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := queueInterleaved(t, s, []string{"idp", "cmdb", "vault"}, 4, base)
	s.Close()
	migrateTo(t, url, 2)
	if got, want := outboxIndexes(t, url), []string{"outbox_claimed", "outbox_due", "outbox_record"}; !slices.Equal(got, want) {
		t.Errorf("outbox indexes after Down = %q, want %q", got, want)
	}
	s = openURL(t, url)
	if got, want := outboxIndexes(t, url), []string{"outbox_claimed", "outbox_record", "outbox_system"}; !slices.Equal(got, want) {
		t.Errorf("outbox indexes after Up = %q, want %q", got, want)
	}
	ws, err := s.OutboxWrites(t.Context(), "", "", time.Time{}, 0)
	if err != nil || len(ws) != 12 {
		t.Fatalf("after Up the outbox holds %d writes, %v; want 12", len(ws), err)
	}
	c, _, err := s.ClaimOutbox(t.Context(), nhisync.ClaimRequest{System: "vault", Holder: "h", Now: base.Add(time.Hour), TTL: time.Hour})
	if err != nil {
		t.Fatalf("ClaimOutbox after Up: %v", err)
	}
	if !slices.Equal(c.IDs, want) {
		t.Errorf("claimed %v, want vault's in next_at, id order %v", c.IDs, want)
	}
}
