package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

func testConflicts(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 4)
	mk := func(id, rec int64, kind, status string, systems ...string) *nhisync.Conflict {
		c := &nhisync.Conflict{ID: id, Kind: kind, RecordID: rec, Record: fmt.Sprintf("%s/aws/r%d", kind, rec), Field: "owner",
			Status: status, Golden: nhisync.Str("g@x"), Opened: at(int(id))}
		for i, sys := range systems {
			c.Proposals = append(c.Proposals, nhisync.Proposal{System: sys, Value: nhisync.SetOf(sys, "x"), At: at(i), Actor: "actor-" + sys})
		}
		return c
	}
	c1 := mk(ids[0], 100, "service_account", nhisync.StatusOpen, "idp", "cmdb")
	c2 := mk(ids[1], 101, "service_account", nhisync.StatusResolved, "cmdb", "catalog")
	c2.Resolved, c2.ResolvedBy, c2.Picked, c2.Resolution = at(90), "person:ana", "catalog", nhisync.SetOf("catalog", "x")
	c3 := mk(ids[2], 100, "application", nhisync.StatusOpen, "catalog")
	c4 := mk(ids[3], 102, "service_account", nhisync.StatusOpen, "idp2") // "idp" must not match "idp2"
	// Committed out of ID order; listed in ID order.
	commit(t, s, &nhisync.Batch{Conflicts: []*nhisync.Conflict{c3, c1, c4, c2}})

	tests := []struct {
		f    nhisync.ItemFilter
		want []*nhisync.Conflict
	}{
		{nhisync.ItemFilter{}, []*nhisync.Conflict{c1, c2, c3, c4}},
		{nhisync.ItemFilter{Status: nhisync.StatusOpen}, []*nhisync.Conflict{c1, c3, c4}},
		{nhisync.ItemFilter{Status: nhisync.StatusResolved}, []*nhisync.Conflict{c2}},
		{nhisync.ItemFilter{RecordID: 100}, []*nhisync.Conflict{c1, c3}},
		{nhisync.ItemFilter{Kind: "application"}, []*nhisync.Conflict{c3}},
		{nhisync.ItemFilter{System: "cmdb"}, []*nhisync.Conflict{c1, c2}},
		{nhisync.ItemFilter{System: "idp"}, []*nhisync.Conflict{c1}},
		{nhisync.ItemFilter{Status: nhisync.StatusOpen, System: "catalog"}, []*nhisync.Conflict{c3}},
		{nhisync.ItemFilter{Status: nhisync.StatusOpen, RecordID: 100, Kind: "service_account", System: "idp"}, []*nhisync.Conflict{c1}},
		{nhisync.ItemFilter{Status: nhisync.StatusDismissed}, nil},
		// Keyset pages: IDs above After, at most Limit.
		{nhisync.ItemFilter{Limit: 2}, []*nhisync.Conflict{c1, c2}},
		{nhisync.ItemFilter{After: c2.ID, Limit: 1}, []*nhisync.Conflict{c3}},
		{nhisync.ItemFilter{Status: nhisync.StatusOpen, After: c1.ID}, []*nhisync.Conflict{c3, c4}},
		{nhisync.ItemFilter{After: c4.ID}, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%+v", tc.f), func(t *testing.T) {
			got, err := s.Conflicts(ctx, tc.f)
			if err != nil {
				t.Fatalf("Conflicts: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("Conflicts(%+v) (-want +got):\n%s", tc.f, d)
			}
		})
	}
	for _, c := range []*nhisync.Conflict{c1, c2} {
		got, err := s.Conflict(ctx, c.ID)
		if err != nil {
			t.Fatalf("Conflict(%d): %v", c.ID, err)
		}
		if d := diff(c, got); d != "" {
			t.Errorf("Conflict(%d) (-want +got):\n%s", c.ID, d)
		}
	}
	_, err := s.Conflict(ctx, ids[3]+1000)
	wantCode(t, "Conflict of a missing id", err, nhisync.ENOTFOUND)

	// Upsert by ID.
	c1b := *c1
	c1b.Status, c1b.Resolved, c1b.ResolvedBy, c1b.Resolution = nhisync.StatusResolved, at(99), "person:bo", nhisync.Str("v")
	c1b.Proposals = c1b.Proposals[:1]
	commit(t, s, &nhisync.Batch{Conflicts: []*nhisync.Conflict{&c1b}})
	open, err := s.Conflicts(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]*nhisync.Conflict{c3, c4}, open); d != "" {
		t.Errorf("open conflicts after resolving one (-want +got):\n%s", d)
	}
	if got, err := s.Conflicts(ctx, nhisync.ItemFilter{System: "cmdb"}); err != nil || len(got) != 1 || got[0].ID != c2.ID {
		t.Errorf("conflicts from cmdb after its proposal left: got %v, %v; want only %d", got, err, c2.ID)
	}
}

func testQuarantineItems(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 4)
	mk := func(id, rec int64, kind, system, status string) *nhisync.QuarantineItem {
		return &nhisync.QuarantineItem{ID: id, Kind: kind, RecordID: rec, Record: fmt.Sprintf("%s/aws/r%d", kind, rec), Field: "owner",
			System: system, ExternalID: "ext-" + system, Value: nhisync.Str("not-an-email"), Rule: "owner-is-email",
			Reason: `rule "owner-is-email" failed`, Status: status, At: at(int(id))}
	}
	q1 := mk(ids[0], 100, "service_account", "idp", nhisync.StatusOpen)
	q2 := mk(ids[1], 100, "service_account", "cmdb", nhisync.StatusDismissed)
	q2.Closed, q2.ClosedBy = at(80), "person:ana"
	q3 := mk(ids[2], 0, "service_account", "cmdb", nhisync.StatusOpen) // disputed: no record
	q3.Value, q3.Rule = nhisync.SetOf("a", "b"), "disputed"
	q4 := mk(ids[3], 101, "application", "catalog", nhisync.StatusCleared)
	commit(t, s, &nhisync.Batch{Quarantine: []*nhisync.QuarantineItem{q4, q2, q3, q1}})

	tests := []struct {
		f    nhisync.ItemFilter
		want []*nhisync.QuarantineItem
	}{
		{nhisync.ItemFilter{}, []*nhisync.QuarantineItem{q1, q2, q3, q4}},
		{nhisync.ItemFilter{Status: nhisync.StatusOpen}, []*nhisync.QuarantineItem{q1, q3}},
		{nhisync.ItemFilter{Status: nhisync.StatusOpen, After: q1.ID, Limit: 1}, []*nhisync.QuarantineItem{q3}},
		{nhisync.ItemFilter{RecordID: 100}, []*nhisync.QuarantineItem{q1, q2}},
		{nhisync.ItemFilter{Kind: "application"}, []*nhisync.QuarantineItem{q4}},
		{nhisync.ItemFilter{System: "cmdb"}, []*nhisync.QuarantineItem{q2, q3}},
		{nhisync.ItemFilter{System: "cmdb", Status: nhisync.StatusOpen}, []*nhisync.QuarantineItem{q3}},
		{nhisync.ItemFilter{System: "ldap"}, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%+v", tc.f), func(t *testing.T) {
			got, err := s.QuarantineItems(ctx, tc.f)
			if err != nil {
				t.Fatalf("QuarantineItems: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("QuarantineItems(%+v) (-want +got):\n%s", tc.f, d)
			}
		})
	}
	got, err := s.QuarantineItem(ctx, q2.ID)
	if err != nil {
		t.Fatalf("QuarantineItem: %v", err)
	}
	if d := diff(q2, got); d != "" {
		t.Errorf("QuarantineItem (-want +got):\n%s", d)
	}
	_, err = s.QuarantineItem(ctx, ids[3]+1000)
	wantCode(t, "QuarantineItem of a missing id", err, nhisync.ENOTFOUND)

	q1b := *q1
	q1b.Status, q1b.Closed, q1b.ClosedBy = nhisync.StatusDismissed, at(81), "person:bo"
	commit(t, s, &nhisync.Batch{Quarantine: []*nhisync.QuarantineItem{&q1b}})
	if got, err := s.QuarantineItem(ctx, q1.ID); err != nil || diff(&q1b, got) != "" {
		t.Errorf("QuarantineItem after upsert: %v (-want +got):\n%s", err, diff(&q1b, got))
	}
}

func testApprovals(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 5)
	mk := func(id, rec int64, system, status string) *nhisync.Approval {
		return &nhisync.Approval{ID: id, Kind: "service_account", RecordID: rec, Record: fmt.Sprintf("service_account/aws/r%d", rec),
			Field: "policy_state", System: system, Value: nhisync.Str("strict"), Old: nhisync.Str("lax"), RequestedBy: "catalog",
			Status: status, Reason: "approve_to", At: at(int(id))}
	}
	a1 := mk(ids[0], 100, "policy", nhisync.StatusPending)
	a2 := mk(ids[1], 100, "policy", nhisync.StatusApproved)
	a2.DecidedBy, a2.Decided = "person:ana", at(70)
	a3 := mk(ids[2], 101, "policy", nhisync.StatusRejected)
	a3.DecidedBy, a3.Decided, a3.Value = "person:bo", at(71), nhisync.SetOf("x", "y")
	a4 := mk(ids[3], 100, "policy", nhisync.StatusSuperseded)
	a5 := mk(ids[4], 0, "cmdb", nhisync.StatusPending)
	a5.Guard, a5.Count, a5.Sample, a5.Field, a5.Value, a5.Old = true, 412, []string{"service_account/aws/a", "service_account/aws/b"}, "", nhisync.Value{}, nhisync.Value{}
	a5.Kind = "application"
	commit(t, s, &nhisync.Batch{Approvals: []*nhisync.Approval{a5, a4, a3, a2, a1}})

	tests := []struct {
		f    nhisync.ItemFilter
		want []*nhisync.Approval
	}{
		{nhisync.ItemFilter{}, []*nhisync.Approval{a1, a2, a3, a4, a5}},
		{nhisync.ItemFilter{Status: nhisync.StatusPending}, []*nhisync.Approval{a1, a5}},
		{nhisync.ItemFilter{Status: nhisync.StatusPending, After: a1.ID, Limit: 5}, []*nhisync.Approval{a5}},
		{nhisync.ItemFilter{After: a2.ID, Limit: 2}, []*nhisync.Approval{a3, a4}},
		{nhisync.ItemFilter{RecordID: 100}, []*nhisync.Approval{a1, a2, a4}},
		{nhisync.ItemFilter{System: "cmdb"}, []*nhisync.Approval{a5}},
		{nhisync.ItemFilter{Kind: "application"}, []*nhisync.Approval{a5}},
		{nhisync.ItemFilter{Kind: "service_account", Status: nhisync.StatusRejected}, []*nhisync.Approval{a3}},
		{nhisync.ItemFilter{RecordID: 999}, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%+v", tc.f), func(t *testing.T) {
			got, err := s.Approvals(ctx, tc.f)
			if err != nil {
				t.Fatalf("Approvals: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("Approvals(%+v) (-want +got):\n%s", tc.f, d)
			}
		})
	}
	for _, a := range []*nhisync.Approval{a3, a5} {
		got, err := s.Approval(ctx, a.ID)
		if err != nil {
			t.Fatalf("Approval(%d): %v", a.ID, err)
		}
		if d := diff(a, got); d != "" {
			t.Errorf("Approval(%d) (-want +got):\n%s", a.ID, d)
		}
	}
	_, err := s.Approval(ctx, ids[4]+1000)
	wantCode(t, "Approval of a missing id", err, nhisync.ENOTFOUND)

	a1b := *a1
	a1b.Status = nhisync.StatusSuperseded
	commit(t, s, &nhisync.Batch{Approvals: []*nhisync.Approval{&a1b}})
	pending, err := s.Approvals(ctx, nhisync.ItemFilter{Status: nhisync.StatusPending})
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]*nhisync.Approval{a5}, pending); d != "" {
		t.Errorf("pending approvals after superseding one (-want +got):\n%s", d)
	}
}

func testOutbox(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 6)
	mk := func(id int64, system, status string, next time.Time) *nhisync.OutboxWrite {
		return &nhisync.OutboxWrite{ID: id, System: system, ExternalID: fmt.Sprintf("x-%d", id), RecordID: 100 + id%2,
			Kind: "service_account", Record: "service_account/aws/r", Field: "owner", Old: nhisync.Str("a@x"), New: nhisync.Str("b@x"),
			Status: status, Cause: "cmdb", NextAt: next, Created: at(0)}
	}
	w1 := mk(ids[0], "cmdb", nhisync.OutboxReady, at(10))
	w2 := mk(ids[1], "cmdb", nhisync.OutboxReady, at(5))
	w3 := mk(ids[2], "idp", nhisync.OutboxHeld, at(5)) // same NextAt as w2: ID breaks the tie
	w3.ApprovalID, w3.Attempts, w3.LastError = 77, 3, "connection refused"
	w4 := mk(ids[3], "cmdb", nhisync.OutboxPlanned, at(20))
	w4.Create, w4.Field, w4.Old, w4.New = true, "", nhisync.Value{}, nhisync.Value{}
	w4.Values = map[string]nhisync.Value{"name": nhisync.Str("bot"), "entitlements": nhisync.SetOf("a", "b"), "owner": {}}
	w5 := mk(ids[4], "idp", nhisync.OutboxReady, time.Time{}) // due at once
	w5.Counts = true
	w6 := mk(ids[5], "cmdb", nhisync.OutboxReady, at(10).Add(time.Nanosecond))
	commit(t, s, &nhisync.Batch{Outbox: []*nhisync.OutboxWrite{w6, w4, w3, w1, w2, w5}})

	tests := []struct {
		name           string
		system, status string
		due            time.Time
		limit          int
		want           []*nhisync.OutboxWrite
	}{
		{"all", "", "", time.Time{}, 0, []*nhisync.OutboxWrite{w5, w2, w3, w1, w6, w4}},
		{"system", "cmdb", "", time.Time{}, 0, []*nhisync.OutboxWrite{w2, w1, w6, w4}},
		{"status", "", nhisync.OutboxReady, time.Time{}, 0, []*nhisync.OutboxWrite{w5, w2, w1, w6}},
		{"due inclusive", "", "", at(10), 0, []*nhisync.OutboxWrite{w5, w2, w3, w1}},
		{"due before all dated", "", "", at(1), 0, []*nhisync.OutboxWrite{w5}},
		{"limit", "", "", time.Time{}, 2, []*nhisync.OutboxWrite{w5, w2}},
		{"everything", "cmdb", nhisync.OutboxReady, at(10), 1, []*nhisync.OutboxWrite{w2}},
		{"unknown system", "ldap", "", time.Time{}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.OutboxWrites(ctx, tc.system, tc.status, tc.due, tc.limit)
			if err != nil {
				t.Fatalf("OutboxWrites: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("OutboxWrites(%q, %q, %v, %d) (-want +got):\n%s", tc.system, tc.status, tc.due, tc.limit, d)
			}
		})
	}

	// Upsert by ID (a retry pushed back), delete by OutboxDone (an unknown
	// ID is no error).
	w2b := *w2
	w2b.Attempts, w2b.NextAt, w2b.LastError = 1, at(30), "timeout"
	commit(t, s, &nhisync.Batch{Outbox: []*nhisync.OutboxWrite{&w2b}, OutboxDone: []int64{w1.ID, w5.ID, ids[5] + 1000}})
	got, err := s.OutboxWrites(ctx, "", "", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]*nhisync.OutboxWrite{w3, w6, w4, &w2b}, got); d != "" {
		t.Errorf("after upsert and done (-want +got):\n%s", d)
	}
}

func testSystemsAndMeta(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	got, err := s.Systems(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Systems of an empty store: %v, %v", got, err)
	}
	if v, err := s.Meta(ctx, "hlc"); err != nil || v != "" {
		t.Fatalf("Meta of an empty store: %q, %v", v, err)
	}
	idp := &nhisync.SystemState{Name: "idp", Cursor: "c-1", LastReadAt: at(1), LastFullAt: at(0), Records: 12,
		Health: nhisync.HealthOK, Mapping: "m1"}
	cmdb := &nhisync.SystemState{Name: "cmdb", Health: nhisync.HealthDegraded, Failures: 3, PausedUntil: at(60),
		LastError: "connection refused", Mapping: "m2"}
	commit(t, s, &nhisync.Batch{Systems: []*nhisync.SystemState{idp, cmdb}, Meta: map[string]string{"hlc": "1", "config": "abc"}})
	idp2 := *idp
	idp2.Cursor, idp2.Records = "c-2", 13
	commit(t, s, &nhisync.Batch{Systems: []*nhisync.SystemState{&idp2}, Meta: map[string]string{"hlc": "2"}})

	got, err = s.Systems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b *nhisync.SystemState) int { return strings.Compare(a.Name, b.Name) })
	if d := diff([]*nhisync.SystemState{cmdb, &idp2}, got); d != "" {
		t.Errorf("Systems (-want +got):\n%s", d)
	}
	for key, want := range map[string]string{"hlc": "2", "config": "abc", "other": ""} {
		if v, err := s.Meta(ctx, key); err != nil || v != want {
			t.Errorf("Meta(%q) = %q, %v; want %q", key, v, err, want)
		}
	}
}
