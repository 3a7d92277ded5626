package engine

import (
	"context"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// A chunk's outcome built ahead is dropped, to be built again once the
// commit before is in, when it holds a link that commit writes: the
// links it read ahead do not have that commit's writes. (It reads no
// store then: the engine here has none.)
func TestBuildAheadDropsChunkOfLinkCommitWrites(t *testing.T) {
	e := &Engine{}
	sys := &nhisync.System{Name: "cmdb"}
	groups := [][]*nhisync.OutboxWrite{
		{{ID: 1, System: "cmdb", ExternalID: "a", RecordID: 7, Field: "owner"}},
		{{ID: 2, System: "cmdb", ExternalID: "b", RecordID: 8, Field: "owner"}},
	}
	results := []nhisync.WriteResult{{Status: nhisync.WriteApplied}, {Status: nhisync.WriteApplied}}
	before := []*nhisync.Link{{System: "cmdb", ExternalID: "b", RecordID: 8}}
	a := e.buildAhead(context.Background(), sys, groups, results, time.Now(), recordKeys{7: "a", 8: "b"}, before)
	<-a.done
	if a.b != nil {
		t.Fatalf("built ahead a chunk whose link b the commit before writes: %+v", a.b)
	}
}
