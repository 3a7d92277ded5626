package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// legacyLog returns a log whose entries hold no old value (every second
// one no new value either), sealed as leaves were written before absent
// values were left out: with "old":null and "new":null. The first
// entry is a record.created entry whose links name their reason.
func legacyLog(t *testing.T, n int) *memLog {
	t.Helper()
	m := &memLog{}
	prev := ""
	for seq := int64(1); seq <= int64(n); seq++ {
		e := genEntry(seq)
		e.Old = nhisync.Value{}
		if seq%2 == 0 {
			e.New = nhisync.Value{}
		}
		if seq == 1 {
			e.Action, e.Field = nhisync.ActRecordCreated, ""
			e.Links = []nhisync.AuditLink{{System: "cmdb", ID: "c-1", Reason: nhisync.ReasonMatch}}
			e.Fields = []nhisync.AuditField{{Field: "owner", System: "idp", Value: nhisync.Str("ana@example.com"), Agreed: []string{"cmdb"}}}
		}
		e.PrevHash = prev
		leaf := e.LeafBytes()
		// As written before: "old" and "new" after "system", null when
		// empty.
		sys := []byte(`,"system":` + mustJSON(t, e.System))
		i := bytes.Index(leaf, sys) + len(sys)
		var mid string
		mid = `,"old":null`
		if e.New.IsZero() {
			mid += `,"new":null`
		}
		leaf = append(leaf[:i:i], append([]byte(mid), leaf[i:]...)...)
		if bytes.Contains(e.LeafBytes(), []byte(`"old"`)) || !bytes.Contains(leaf, []byte(`"old":null`)) {
			t.Fatalf("legacy leaf %s", leaf)
		}
		e.Hash = base64.StdEncoding.EncodeToString(nhisync.LeafHash(leaf))
		prev = e.Hash
		m.items = append(m.items, memItem{e: e, leaf: leaf})
	}
	return m
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLegacyLeaves: a log written before absent values were left out of
// leaves ("old":null) and before links left out the reason "match"
// verifies, proves and exports as stored, and its entries read as the
// same entries written now.
func TestLegacyLeaves(t *testing.T) {
	ctx := context.Background()
	s := testSigner(t, "nhisync.test")
	log := legacyLog(t, 12)
	mustCheckpoint(t, log, s)
	log.items = append(log.items, legacyLog(t, 14).items[12:]...) // chains on: same generator
	mustCheckpoint(t, log, s)
	rep, err := Verify(ctx, log, s.VerifierKey())
	if err != nil || !rep.OK {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if _, err := InclusionProof(ctx, log, 3, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Export(ctx, log, &buf, 0, 0); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	for i := 0; sc.Scan(); i++ {
		it := log.items[i]
		line := strings.Replace(sc.Text(), `,"hash":"`+it.e.Hash+`"`, "", 1)
		if line != string(it.leaf) {
			t.Fatalf("entry %d exported without its hash:\n%s\nleaf:\n%s", i+1, line, it.leaf)
		}
		var back nhisync.AuditEntry
		if err := json.Unmarshal(it.leaf, &back); err != nil {
			t.Fatal(err)
		}
		if !back.Old.IsZero() || back.New.IsZero() != it.e.New.IsZero() {
			t.Fatalf("entry %d reads old %v new %v", i+1, back.Old, back.New)
		}
		if i == 0 {
			ex := back.Expand()
			if len(ex) != 4 || ex[1].Action != nhisync.ActRecordLinked || ex[1].Reason != nhisync.ReasonMatch {
				t.Fatalf("legacy record.created expands to %+v", ex)
			}
		}
	}
}
