package ocsf_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit/ocsf"
	"github.com/nhisync/nhisync/sqlite"
)

// TestExport appends entries to a real SQLite audit log and checks every
// exported line is an OCSF Entity Management event carrying the entry.
func TestExport(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entries := []*nhisync.AuditEntry{
		{Time: at, Actor: "idp", Action: nhisync.ActRecordCreated, Kind: "service_account", RecordID: 1, Record: "aws/pay-bot", System: "idp"},
		{Time: at, Actor: "cmdb", Action: nhisync.ActAccepted, Kind: "service_account", RecordID: 1, Record: "aws/pay-bot", Field: "owner", System: "cmdb", New: nhisync.Str("ann@example.com"), Reason: "priority"},
		{Time: at, Actor: "idp", Action: nhisync.ActAccepted, Kind: "service_account", RecordID: 1, Record: "aws/pay-bot", Field: "api_token", System: "idp", New: nhisync.SensitiveValue([]byte("test-audit-secret"), nhisync.Str("hunter2"))},
		{Time: at, Actor: "catalog", Action: nhisync.ActRefused, Kind: "service_account", RecordID: 1, Record: "aws/pay-bot", Field: "owner", System: "catalog", New: nhisync.Str("bob@example.com")},
		{Time: at, Actor: nhisync.Person("ann"), Action: nhisync.ActApprovalRejected, Kind: "service_account", RecordID: 1, Record: "aws/pay-bot", Field: "policy_state", System: "policy"},
		{Time: at, Actor: "idp", Action: nhisync.ActRecordRetired, Kind: "service_account", RecordID: 1, Record: "aws/pay-bot"},
		{Time: at, Actor: "nhisync", Action: nhisync.ActSystemDegraded, System: "cmdb", Reason: "3 passes failed"},
	}
	if err := st.Commit(ctx, &nhisync.Batch{Audit: entries}); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := ocsf.Export(ctx, st, &b, 1, 0); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "hunter2") || !strings.Contains(b.String(), nhisync.SensitivePrefix) {
		t.Error("a sensitive value is not kept as its hash")
	}
	want := []struct {
		activity, status int
		actorType        string
		entity           string
	}{
		{1, 1, "System", "service_account"}, {3, 1, "System", "service_account"}, {3, 1, "System", "service_account"},
		{3, 2, "System", "service_account"}, {3, 2, "User", "service_account"}, {11, 1, "System", "service_account"}, {99, 1, "System", "system"},
	}
	sc := bufio.NewScanner(&b)
	sc.Buffer(nil, 1<<20)
	i := 0
	for ; sc.Scan(); i++ {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		for _, k := range []string{"class_uid", "category_uid", "activity_id", "type_uid", "time", "severity_id", "status_id", "metadata", "actor", "entity", "unmapped"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("line %d lacks %s", i+1, k)
			}
		}
		if i >= len(want) {
			continue
		}
		w := want[i]
		act, status := int(ev["activity_id"].(float64)), int(ev["status_id"].(float64))
		user := ev["actor"].(map[string]any)["user"].(map[string]any)
		if ev["class_uid"].(float64) != 3004 || int(ev["type_uid"].(float64)) != 300400+act || act != w.activity || status != w.status ||
			user["type"] != w.actorType || ev["entity"].(map[string]any)["type"] != w.entity {
			t.Errorf("line %d (%s): %s", i+1, entries[i].Action, sc.Text())
		}
		md := ev["metadata"].(map[string]any)
		if md["version"] != ocsf.Version || md["event_code"] != entries[i].Action {
			t.Errorf("line %d metadata %v", i+1, md)
		}
		if nh := ev["unmapped"].(map[string]any)["nhisync"].(map[string]any); nh["hash"] == "" || nh["seq"].(float64) != float64(i+1) {
			t.Errorf("line %d does not carry its audit entry: %v", i+1, nh)
		}
	}
	if i != len(entries) {
		t.Errorf("%d lines, want %d", i, len(entries))
	}
	if err := ocsf.Export(ctx, st, &b, 5, 2); err == nil {
		t.Error("a backwards range was accepted")
	}
}
