package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nhisync/nhisync"
)

// applyCounter counts the Apply calls a real connector gets, passing on
// whether it wants all of a pass's writes in one call.
type applyCounter struct {
	nhisync.Connector
	calls *int
}

func (c applyCounter) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	*c.calls++
	return c.Connector.Apply(ctx, ws)
}

func (c applyCounter) ApplyWhole() bool {
	w, ok := c.Connector.(nhisync.WholeApplier)
	return ok && w.ApplyWhole()
}

// threeChunksN is how many records threeChunks gives each of idp and
// cmdb: three chunks' worth of writes.
const threeChunksN = 1201

// threeChunks is an estate whose every cmdb record is written on the
// first pass (it takes the idp's lifecycle): threeChunksN records in
// each of idp and cmdb, none in the catalog.
func threeChunks() map[string][]map[string]any {
	var idp, cmdb []map[string]any
	for i := range threeChunksN {
		name := fmt.Sprintf("svc-%04d", i)
		idp = append(idp, sa(fmt.Sprintf("i%d", i), "aws", name, "status", "active"))
		cmdb = append(cmdb, sa(fmt.Sprintf("c%d", i), "aws", name, "owner", fmt.Sprintf("team%d@example.com", i%7), "tags", []any{"pci"}))
	}
	return map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": {}}
}

// A file system is rewritten once per pass, however many records it
// writes (not once per chunk of 500: an N² cost in the size of the file),
// and every write is still applied, committed and quiet on the next pass.
func TestFileSystemRewrittenOncePerPass(t *testing.T) {
	w := newWorld(t, baseConfig, threeChunks())
	calls := map[string]*int{}
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if calls[name] == nil {
			calls[name] = new(int)
		}
		return applyCounter{c, calls[name]}
	}
	sum := w.sync()
	// cmdb takes the idp's lifecycle for every record.
	if got := sum.Systems["cmdb"].Written; got != threeChunksN {
		t.Fatalf("cmdb written %d, want %d\n%s", got, threeChunksN, actions(sum))
	}
	if got := *calls["cmdb"]; got != 1 {
		t.Fatalf("cmdb.json rewritten by %d Apply calls in one pass, want 1", got)
	}
	if got := w.field("cmdb.json", "c1200", "status"); got != "active" {
		t.Fatalf("c1200 status = %v, want active", got)
	}
	sum = w.sync()
	if sum.WritesPlanned != 0 || sum.Systems["cmdb"].Changed != 0 {
		t.Fatalf("second pass not quiet: planned %d, cmdb changed %d", sum.WritesPlanned, sum.Systems["cmdb"].Changed)
	}
}
