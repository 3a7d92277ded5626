package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// LinksVersion passes the store's on: the world's engines may keep heads
// (engine.WithHeadCache).
func (b *bulkCheck) LinksVersion(ctx context.Context) (uint64, error) {
	lv, ok := b.Store.(nhisync.LinksVersioner)
	if !ok {
		return 0, errors.New("bulkCheck: the store keeps no links version")
	}
	return lv.LinksVersion(ctx)
}

// TestKeptHeads: an engine keeping heads (nhisync serve) loads a system's
// link heads only when a link head changed since it last loaded them: a
// quiet pass after a quiet pass loads none, and still finds a drifted
// record; a pass whose commits changed heads, or a commit of another
// process between two passes, makes the next load them again. The last
// step fails with heads kept regardless of the version: another process
// took the owner to bob and the system back to alice, whose hash is the
// one the kept head holds, so a pass trusting it would see no change and
// leave the golden owner at bob.
func TestKeptHeads(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot", "scopes", []any{"s3:read"}), sa("i2", "gcp", "etl", "scopes", []any{"bq:read"})},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "alice@x.io"), sa("c2", "gcp", "etl", "owner", "carol@x.io")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "alice@x.io"), sa("k2", "gcp", "etl", "steward", "carol@x.io")},
	})
	w.opts = append(w.opts, engine.WithHeadCache(engine.NewHeadCache()))
	bc := w.store.(*bulkCheck)
	systems := len(w.cfg.SystemNames)
	// pass runs a pass of the engine keeping heads and returns how many
	// systems' heads it loaded.
	pass := func(what string) (*engine.Summary, int) {
		t.Helper()
		before := bc.linkHeadScans.Load()
		sum := w.sync()
		if sum.WritesFailed > 0 {
			t.Fatalf("%s: %d writes failed", what, sum.WritesFailed)
		}
		loads, kept := int(bc.linkHeadScans.Load()-before), 0
		for _, ss := range sum.Systems {
			if ss.HeadsKept {
				kept++
			}
		}
		if loads+kept != systems {
			t.Errorf("%s: %d systems' heads loaded and %d said kept (SystemSummary.HeadsKept), want %d in all", what, loads, kept, systems)
		}
		return sum, loads
	}
	if _, loads := pass("first"); loads != systems {
		t.Errorf("first pass loaded %d systems' heads, want %d", loads, systems)
	}
	if sum, loads := pass("second"); loads != systems || sum.WritesPlanned != 0 {
		t.Errorf("second pass (after the first's links): loaded %d systems' heads, planned %d writes; want %d, 0", loads, sum.WritesPlanned, systems)
	}
	if sum, loads := pass("quiet"); loads != 0 || sum.WritesPlanned != 0 {
		t.Errorf("quiet pass after a quiet pass: loaded %d systems' heads, planned %d writes; want 0, 0", loads, sum.WritesPlanned)
	}

	// Drift, found with the kept heads; its commits change heads.
	w.edit("cmdb.json", "c2", map[string]any{"owner": "dave@x.io"})
	if _, loads := pass("drift"); loads != 0 {
		t.Errorf("drift pass after a quiet pass loaded %d systems' heads, want 0", loads)
	}
	if got := w.golden("service_account", "owner", "gcp", "etl"); got != "dave@x.io" {
		t.Fatalf("golden owner of etl after the drift pass = %q, want dave@x.io", got)
	}
	if got := w.field("catalog.json", "k2", "steward"); got != "dave@x.io" {
		t.Errorf("catalog steward of etl after the drift pass = %v, want dave@x.io", got)
	}
	if _, loads := pass("after drift"); loads != systems {
		t.Errorf("the pass after one that changed heads loaded %d systems' heads, want %d", loads, systems)
	}
	if _, loads := pass("quiet again"); loads != 0 {
		t.Errorf("quiet pass after a quiet pass loaded %d systems' heads, want 0", loads)
	}

	// Another process (the CLI) takes bot's owner to bob; then cmdb goes
	// back to alice, the value the kept heads' hashes were taken from.
	w.edit("cmdb.json", "c1", map[string]any{"owner": "bob@x.io"})
	if _, err := w.otherProcess("cli").Sync(context.Background(), engine.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "bob@x.io" {
		t.Fatalf("golden owner of bot after the other process's pass = %q, want bob@x.io", got)
	}
	w.edit("cmdb.json", "c1", map[string]any{"owner": "alice@x.io"})
	if _, loads := pass("after another process"); loads != systems {
		t.Errorf("the pass after another process changed heads loaded %d systems' heads, want %d", loads, systems)
	}
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "alice@x.io" {
		t.Errorf("golden owner of bot after cmdb went back to alice = %q, want alice@x.io (a kept head trusted though another process changed it)", got)
	}
}
