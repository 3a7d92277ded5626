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
		{Time: at, Actor: "idp", Action: nhisync.ActRecordCreated, Kind: "service_account", RecordID: 1, Record: "aws/pay-bot", System: "idp", New: nhisync.Str("u-1"),
			Links:  []nhisync.AuditLink{{System: "cmdb", ID: "c-7", Reason: "match"}, {System: "catalog", ID: "aws/pay-bot", Reason: "match"}},
			Fields: []nhisync.AuditField{{Field: "name", System: "idp", Value: nhisync.Str("pay-bot"), Reason: "priority: the golden value was empty", Agreed: []string{"cmdb", "catalog"}}}},
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
		if i == 0 {
			// A record.created entry names the links made with the record
			// and its first values, in the entity and the message.
			data, _ := ev["entity"].(map[string]any)["data"].(map[string]any)
			links, _ := data["links"].(map[string]any)
			fields, _ := data["fields"].(map[string]any)
			if links["cmdb"] != "c-7" || links["catalog"] != "aws/pay-bot" || fields["name"] != "pay-bot" {
				t.Errorf("record.created entity data %v, want its links and first values", data)
			}
			if msg := ev["message"].(string); !strings.Contains(msg, `linked in cmdb "c-7", catalog "aws/pay-bot"`) {
				t.Errorf("record.created message %q does not name its links", msg)
			}
			nh := ev["unmapped"].(map[string]any)["nhisync"].(map[string]any)
			if l, _ := nh["links"].([]any); len(l) != 2 {
				t.Errorf("unmapped entry lacks its links: %v", nh)
			}
		}
	}
	if i != len(entries) {
		t.Errorf("%d lines, want %d", i, len(entries))
	}
	if err := ocsf.Export(ctx, st, &b, 5, 2); err == nil {
		t.Error("a backwards range was accepted")
	}
}
