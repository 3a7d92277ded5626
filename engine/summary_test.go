package engine

import (
	"fmt"
	"reflect"
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

// TestCountRecordCreatedTallies counts a record.created entry that stands
// for more systems and actions than its tally holds: every one is counted
// once, as the entries it stands for would be.
func TestCountRecordCreatedTallies(t *testing.T) {
	ev := &nhisync.AuditEntry{Action: nhisync.ActRecordCreated, System: "s0"}
	want := map[string]map[string]int{"s0": {nhisync.ActRecordCreated: 1}}
	add := func(system, action string) {
		if want[system] == nil {
			want[system] = map[string]int{}
		}
		want[system][action]++
	}
	for i := range 15 {
		sys := fmt.Sprintf("s%d", i+1)
		ev.Links = append(ev.Links, nhisync.AuditLink{System: sys, ID: "x"})
		add(sys, nhisync.ActRecordLinked)
	}
	for i := range 4 {
		f := nhisync.AuditField{Field: fmt.Sprintf("f%d", i), System: "s0", Agreed: []string{"s1", "s2:alice", "s1"}}
		ev.Fields = append(ev.Fields, f)
		add("s0", nhisync.ActAccepted)
		add("s1", nhisync.ActObserved)
		add("s2", nhisync.ActObserved)
		add("s1", nhisync.ActObserved)
	}
	var s Summary
	s.count(ev)
	if !reflect.DeepEqual(s.Actions, want) {
		t.Errorf("Actions = %v, want %v", s.Actions, want)
	}
	if s.Created != 1 || s.Linked != 15 || s.Accepted != 4 {
		t.Errorf("created %d, linked %d, accepted %d; want 1, 15, 4", s.Created, s.Linked, s.Accepted)
	}
}
