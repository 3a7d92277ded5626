package sqlite

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// TestLoadLinksAnyBytes: LoadLinks finds links by external ids of any
// bytes — quotes, backslashes, control characters, non-ASCII, invalid
// UTF-8, NUL — each alone and mixed in one call (JSON array or bound
// parameters), and no other link.
func TestLoadLinksAnyBytes(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	ids := []string{"plain", `q"uote`, `back\slash`, "tab\tnl\n\x01\x1f", "ünïcode €", "\u2028", "bad\xff\xfe", "nul\x00byte", "<&>"}
	b := &nhisync.Batch{}
	for _, id := range ids {
		b.Links = append(b.Links, &nhisync.Link{System: "idp", ExternalID: id, Status: nhisync.LinkUnmatched})
		b.Links = append(b.Links, &nhisync.Link{System: "idp", ExternalID: id + "-other", Status: nhisync.LinkUnmatched})
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	calls := [][]string{ids, {"plain", `q"uote`, "tab\tnl\n\x01\x1f", "missing"}}
	for _, id := range ids {
		calls = append(calls, []string{id})
	}
	for _, call := range calls {
		got, err := s.LoadLinks(ctx, "idp", call)
		if err != nil {
			t.Fatalf("LoadLinks(%q): %v", call, err)
		}
		var gotIDs []string
		for _, l := range got {
			gotIDs = append(gotIDs, l.ExternalID)
		}
		want := slices.DeleteFunc(slices.Clone(call), func(id string) bool { return id == "missing" })
		slices.Sort(want)
		if !slices.Equal(gotIDs, want) {
			t.Errorf("LoadLinks(%q) = %q, want %q", call, gotIDs, want)
		}
	}
}

// TestAppendJSONStrings: the array JSON decodes to the ids, byte for byte,
// and ids JSON cannot carry give nil.
func TestAppendJSONStrings(t *testing.T) {
	ids := []string{"", "plain", `q"uote`, `back\slash`, "ctl\x01\x1f\x7f", "ünïcode €", "\u2028\u2029", "<&>"}
	var back []string
	if err := json.Unmarshal(appendJSONStrings(nil, ids), &back); err != nil || !slices.Equal(back, ids) {
		t.Errorf("decoded %q (%v), want %q", back, err, ids)
	}
	for _, bad := range []string{"bad\xff", "nul\x00"} {
		if got := appendJSONStrings(nil, []string{"ok", bad}); got != nil {
			t.Errorf("appendJSONStrings(%q) = %s, want nil", bad, got)
		}
	}
}

// TestRecordIDsByKeyAnyBytes: RecordIDsByKey finds records by match keys
// of any bytes, as ScanRecordHeads reads them back — invalid UTF-8 and
// NUL included, which JSON would not carry — each alone and mixed in one
// call, and no other record.
func TestRecordIDsByKeyAnyBytes(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	keys := []string{"plain", `q"uote`, `back\slash`, "tab\tnl\n\x01\x1f", "ünïcode €", "\u2028", "bad\xff\xfe", "nul\x00byte", "<&>", ""}
	first, err := s.NewIDs(ctx, 2*len(keys))
	if err != nil {
		t.Fatal(err)
	}
	b := &nhisync.Batch{}
	want := map[string]int64{}
	for i, key := range keys {
		id := first + int64(2*i)
		want[key] = id
		b.Records = append(b.Records, &nhisync.Record{ID: id, Kind: "service_account", Key: "k", MatchKey: key},
			&nhisync.Record{ID: id + 1, Kind: "service_account", Key: "k", MatchKey: key + "-other"})
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	calls := [][]string{keys, {"plain", "nul\x00byte", "missing"}, {"bad\ufffd\ufffd", "nul"}}
	for _, key := range keys {
		calls = append(calls, []string{key})
	}
	for _, call := range calls {
		got, err := s.RecordIDsByKey(ctx, "service_account", call)
		if err != nil {
			t.Fatalf("RecordIDsByKey(%q): %v", call, err)
		}
		wantCall := map[string]int64{}
		for _, key := range call {
			if id, ok := want[key]; ok {
				wantCall[key] = id
			}
		}
		if !maps.Equal(got, wantCall) {
			t.Errorf("RecordIDsByKey(%q) = %v, want %v", call, got, wantCall)
		}
	}
}

// TestLoadLinksAheadSkipsWriter: a load marked nhisync.Ahead reads on a
// reader, so it does not wait while the writer's connection is taken (a
// commit in flight); its heads are kept all the same.
func TestLoadLinksAheadSkipsWriter(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	b := &nhisync.Batch{Links: []*nhisync.Link{{System: "idp", ExternalID: "a", Status: nhisync.LinkUnmatched}}}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	conn, err := s.w.Conn(ctx) // the writer's one connection, taken
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type loaded struct {
		links []*nhisync.Link
		err   error
	}
	done := make(chan loaded, 1)
	go func() {
		ls, err := s.LoadLinks(nhisync.Ahead(ctx), "idp", []string{"a"})
		done <- loaded{ls, err}
	}()
	select {
	case got := <-done:
		if got.err != nil || len(got.links) != 1 || got.links[0].ExternalID != "a" || got.links[0].Stored == nil {
			t.Fatalf("LoadLinks(Ahead) = %+v, %v; want link a with its head kept", got.links, got.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LoadLinks(Ahead) waited for the writer's connection")
	}
}
