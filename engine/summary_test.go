package engine

import (
	"testing"

	"github.com/nhisync/nhisync"
)

// TestKeepBoundsRecordEventsOnly: sync keeps a few events per system and
// action for its listing, but never drops a guard's request (an event
// about a system, not a record), however many held writes came before.
func TestKeepBoundsRecordEventsOnly(t *testing.T) {
	s := &Summary{}
	var evs []*nhisync.AuditEntry
	for range 5 {
		evs = append(evs, &nhisync.AuditEntry{Action: nhisync.ActApprovalRequested, System: "cmdb", Kind: "sa", Record: "r"})
	}
	evs = append(evs, &nhisync.AuditEntry{Action: nhisync.ActApprovalRequested, System: "cmdb", New: nhisync.Str("40 writes")})
	s.keep(evs, 2)
	if len(s.Events) != 3 || s.Events[2].Record != "" {
		t.Fatalf("kept %d events, want 2 about records and the guard's request: %+v", len(s.Events), s.Events)
	}
}
