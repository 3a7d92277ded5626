package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// gatedRead is a connector whose Snapshot waits for heads to close first
// (when set) and closes read once it returns.
type gatedRead struct {
	nhisync.Connector
	heads, read chan struct{}
}

func (g *gatedRead) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	defer close(g.read)
	if g.heads != nil {
		<-g.heads
	}
	return g.Connector.Snapshot(ctx, emit)
}

// loadsCounted counts the ids whose links a pass loads (LoadLinks).
type loadsCounted struct {
	*bulkCheck
	ids int
}

func (c *loadsCounted) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	c.ids += len(ids)
	return c.bulkCheck.LoadLinks(ctx, system, ids)
}

// TestReadBeforeHeads: a full read loads its system's link heads while it
// reads, and sorts the records read before they are in once they are
// (unchanged, changed, new, an id read twice, a stray nothing could match).
// Here each system's heads load only once the system is read whole, so
// every record is read first, or the other way round: the pass finds what a pass reading after
// its heads finds, and loads the links of as many strays (k9, unchanged
// and matching nothing, none: leaveStrays).
func TestReadBeforeHeads(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "payments-bot"), sa("i2", "aws", "billing-bot"), sa("i3", "gcp", "etl")},
		"cmdb.json":    {sa("c1", "aws", "payments-bot", "owner", "alice@example.com"), sa("c2", "gcp", "etl"), sa("c2", "gcp", "etl-twin")},
		"catalog.json": {sa("k1", "aws", "billing-bot", "steward", "bob@example.com"), sa("k9", "azure", "nobody")},
	})
	bc := w.store.(*bulkCheck)
	lc := &loadsCounted{bulkCheck: bc}
	w.store = lc
	// A pass reads each system before its heads load (readFirst), or
	// after.
	readFirst := false
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		g := &gatedRead{Connector: c, read: make(chan struct{})}
		if !readFirst {
			g.heads = make(chan struct{})
		}
		return g
	}
	bc.headsGate = func(system string, done bool) {
		g := w.conns[system].(*gatedRead)
		switch {
		case readFirst && !done:
			<-g.read
		case !readFirst && done:
			close(g.heads)
		}
	}
	// counts is what a pass read and found changed per system, and what
	// it did.
	counts := func(sum *engine.Summary) string {
		var b strings.Builder
		names := keys(sum.Systems)
		slices.Sort(names)
		for _, name := range names {
			ss := sum.Systems[name]
			fmt.Fprintf(&b, "%s read %d changed %d\n", name, ss.Read, ss.Changed)
		}
		for _, line := range strings.SplitAfter(actions(sum), "\n") {
			// Every pass of a world's new engine says its config.
			if !strings.HasPrefix(line, nhisync.ActConfigLoaded+" ") {
				b.WriteString(line)
			}
		}
		return b.String()
	}
	w.sync()
	lc.ids = 0
	quiet := counts(w.sync()) // heads first: the estate as it settled
	quietLoads := lc.ids
	readFirst = true
	lc.ids = 0
	if got := counts(w.sync()); got != quiet {
		t.Errorf("read before its heads, a quiet pass found\n%s\nwant (heads first)\n%s", got, quiet)
	}
	if lc.ids != quietLoads {
		t.Errorf("read before its heads, a quiet pass loaded %d links, want %d (heads first)", lc.ids, quietLoads)
	}
	if !strings.Contains(quiet, "cmdb read 3 changed 2") {
		t.Errorf("the id read twice is not staged each pass:\n%s", quiet)
	}

	// A changed record and a new one, read before the heads are in.
	w.edit("cmdb.json", "c1", map[string]any{"owner": "carol@example.com"})
	w.put("idp.json", append(w.get("idp.json"), sa("i4", "aws", "new-bot")))
	sum := w.sync()
	got := counts(sum)
	for _, want := range []string{"cmdb read 3 changed 3", "idp read 4 changed 1", "catalog read 2 changed 0"} {
		if !strings.Contains(got, want) {
			t.Errorf("read before its heads: want %q in\n%s", want, got)
		}
	}
	if g := w.golden("service_account", "owner", "aws", "payments-bot"); g != "carol@example.com" {
		t.Errorf("owner = %q, want the changed record's carol@example.com", g)
	}
	if w.record("service_account", "aws", "new-bot") == nil {
		t.Error("the new record read before the heads made no golden record")
	}
}
