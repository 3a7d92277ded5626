package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// csvConfig is baseConfig with the CMDB a CSV export.
var csvConfig = strings.Replace(baseConfig, "path: cmdb.json", "path: cmdb.csv", 1)

const cmdbCSV = "id,name,platform,owner,status,tags,scopes,policy\n" +
	"c1,bot,aws,alice@example.com,active,pci,s3:read,\n" +
	"c2,etl,aws,bob@example.com,active,,,\n"

func (w *world) write(name, content string) {
	if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) read(name string) string {
	b, err := os.ReadFile(filepath.Join(w.dir, name))
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}

func csvWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t, csvConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot", "status", "active", "scopes", []any{"s3:read"}), sa("i2", "aws", "etl", "status", "active")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "alice@example.com", "tags", []any{"pci"}), sa("k2", "aws", "etl", "steward", "bob@example.com")},
	})
	w.write("cmdb.csv", cmdbCSV)
	w.sync()
	if sum := w.sync(); sum.WritesPlanned != 0 {
		t.Fatalf("setup does not converge:\n%s", actions(sum))
	}
	return w
}

// Issue 6 finding 1, end to end: a CMDB row cut short (a hand edit, an
// export cut mid-write) is quarantined, never read as clears, and no
// other system changes; a torn file leaves the CMDB unread.
func TestCutShortCSVRowReachesNoSystem(t *testing.T) {
	w := csvWorld(t)
	idp, catalog := w.read("idp.json"), w.read("catalog.json")
	w.write("cmdb.csv", "id,name,platform,owner,status,tags,scopes,policy\nc1,bot\nc2,etl,aws,bob@example.com,active,,,\n")
	sum := w.sync()
	if sum.WritesPlanned != 0 || sum.Quarantined == 0 {
		t.Fatalf("a cut-short row: planned %d writes, quarantined %d\n%s", sum.WritesPlanned, sum.Quarantined, actions(sum))
	}
	for _, q := range w.quarantine(nhisync.StatusOpen) {
		if !strings.Contains(q.Reason, "line 2 has 2 of the header's 8 fields") {
			t.Errorf("quarantine reason %q", q.Reason)
		}
	}
	if w.read("idp.json") != idp || w.read("catalog.json") != catalog {
		t.Errorf("a cut-short CMDB row changed another system")
	}
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "alice@example.com" {
		t.Errorf("golden owner %q", got)
	}

	w.write("cmdb.csv", "id,name,platform,owner,status,tags,scopes,policy\nc1,bot,aws,alice@example.com,active,pci,s3:read,\nc2,etl,aws,")
	sum = w.sync()
	if s := sum.Systems["cmdb"]; s == nil || !s.ReadFailed || !strings.Contains(s.Error, "torn") {
		t.Fatalf("torn file: %+v", s)
	}
	if sum.WritesPlanned != 0 || sum.Retired != 0 || w.read("idp.json") != idp || w.read("catalog.json") != catalog {
		t.Errorf("a torn CMDB changed something\n%s", actions(sum))
	}

	// A header that lost a mapped column fails the read: no link vanishes.
	w.write("cmdb.csv", strings.Replace(cmdbCSV, ",owner,", ",OWNER_NAME,", 1))
	sum = w.sync()
	if s := sum.Systems["cmdb"]; s == nil || !s.ReadFailed || !strings.Contains(s.Error, `no column "owner"`) {
		t.Fatalf("renamed column: %+v", s)
	}
	if len(w.record("service_account", "aws", "bot").Links) != 3 {
		t.Errorf("links lost after a renamed column")
	}
}

// Issue 6 finding 5, end to end: an object for a string field, a NUL byte
// and invalid UTF-8 are quarantined with the reason; nothing propagates.
func TestHostileValuesAreQuarantined(t *testing.T) {
	w := csvWorld(t)
	idp, cmdb := w.read("idp.json"), w.read("cmdb.csv")
	w.edit("catalog.json", "k1", map[string]any{"steward": map[string]any{"a": 1}})
	w.edit("catalog.json", "k2", map[string]any{"steward": "bob\x00@example.com"})
	sum := w.sync()
	if sum.WritesPlanned != 0 || sum.Quarantined != 2 {
		t.Fatalf("planned %d, quarantined %d\n%s", sum.WritesPlanned, sum.Quarantined, actions(sum))
	}
	reasons := ""
	for _, q := range w.quarantine(nhisync.StatusOpen) {
		reasons += q.Reason + "\n"
	}
	for _, want := range []string{"an object where a value belongs", "NUL byte"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("reasons lack %q:\n%s", want, reasons)
		}
	}
	if w.read("idp.json") != idp || w.read("cmdb.csv") != cmdb {
		t.Errorf("a hostile value reached another system")
	}
	w.write("cmdb.csv", strings.Replace(cmdbCSV, "bob@example.com", "b\xffb@example.com", 1))
	sum = w.sync()
	if sum.WritesPlanned != 0 || !strings.Contains(actions(sum), "not valid UTF-8") {
		t.Errorf("invalid UTF-8:\n%s", actions(sum))
	}
}

// Issue 6 finding 5: match keys are NFC without default-ignorable code
// points, so "café" typed two ways and a name with a trailing zero-width
// space meet on one golden record.
func TestMatchKeysAreNormalised(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "café-bot"), sa("i2", "aws", "etl")},
		"cmdb.json":    {sa("c1", "aws", "cafe\u0301-bot"), sa("c2", "aws", "etl\u200b")},
		"catalog.json": {sa("k1", "aws", "CAFÉ-BOT\ufeff")},
	})
	sum := w.sync()
	if sum.Created != 2 || sum.Linked != 3 {
		t.Fatalf("created %d, linked %d; want 2 and 3\n%s", sum.Created, sum.Linked, actions(sum))
	}
}

// Issue 6 finding 6: two records with one id in a system are both
// disputed (quarantined, listed) and neither proposes; once the id is
// unique again the record links and proposes as before.
func TestDuplicateIDsAreDisputedNotFirstWins(t *testing.T) {
	w := csvWorld(t)
	idp, catalog := w.read("idp.json"), w.read("catalog.json")
	w.write("cmdb.csv", cmdbCSV+"c1,evil,aws,mallory@example.com,suspended,,,\n")
	sum := w.sync()
	if sum.WritesPlanned != 0 || sum.Accepted != 0 || sum.Created != 0 || sum.Disputed != 1 {
		t.Fatalf("planned %d accepted %d created %d disputed %d\n%s", sum.WritesPlanned, sum.Accepted, sum.Created, sum.Disputed, actions(sum))
	}
	qs := w.quarantine(nhisync.StatusOpen)
	if len(qs) != 1 || qs[0].Rule != "disputed" || qs[0].ExternalID != "c1" || !strings.Contains(qs[0].Reason, `id "c1" is held by 2 records in cmdb`) {
		t.Fatalf("quarantine %+v", qs)
	}
	if w.read("idp.json") != idp || w.read("catalog.json") != catalog || w.golden("service_account", "owner", "aws", "bot") != "alice@example.com" {
		t.Errorf("a duplicated id's values were used")
	}
	if sum = w.sync(); sum.WritesPlanned != 0 || sum.Quarantined != 0 {
		t.Errorf("second pass with the duplicate:\n%s", actions(sum))
	}
	// Fixed: the id is unique and its record correlates afresh.
	w.write("cmdb.csv", strings.Replace(cmdbCSV, "alice@example.com", "carol@example.com", 1))
	w.sync()
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "carol@example.com" {
		t.Errorf("after the fix owner = %q", got)
	}
	if len(w.quarantine(nhisync.StatusOpen)) != 0 || len(w.record("service_account", "aws", "bot").Links) != 3 {
		t.Errorf("after the fix: quarantine %v, links %d", w.quarantine(nhisync.StatusOpen), len(w.record("service_account", "aws", "bot").Links))
	}
}

// cancelOnRead cancels the pass's context once its system has emitted a
// record: what SIGINT or SIGTERM does to `nhisync sync` mid-read.
type cancelOnRead struct {
	nhisync.Connector
	cancel context.CancelFunc
	after  *int
}

func (c cancelOnRead) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	return c.Connector.Snapshot(ctx, func(obs nhisync.Observation) error {
		if *c.after++; *c.after == 1 {
			c.cancel()
		}
		return emit(obs)
	})
}

// Issue 6 finding 4: a pass whose context is cancelled during a read
// (SIGINT, SIGTERM) stops there: it returns the cancellation and commits
// nothing of the pass.
func TestPassStopsWhenCancelledMidRead(t *testing.T) {
	w := csvWorld(t)
	var b strings.Builder
	b.WriteString("id,name,platform,owner,status,tags,scopes,policy\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "x%d,bot%d,aws,o%d@example.com,active,,,\n", i, i, i)
	}
	w.write("cmdb.csv", b.String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name == "cmdb" {
			return cancelOnRead{Connector: c, cancel: cancel, after: &n}
		}
		return c
	}
	before, _, err := w.store.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.engine().Sync(ctx, engine.PassOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync after cancel: %v", err)
	}
	if n > 1024 {
		t.Errorf("the read went on for %d records after the cancel", n)
	}
	after, _, _ := w.store.AuditHead(context.Background())
	if after != before {
		t.Errorf("a cancelled pass committed %d audit entries", after-before)
	}
}
