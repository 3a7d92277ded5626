package file_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/file"
)

var csvFields = []string{"name=name", "platform=platform", "owner=owned_by", "classification=tags"}

const csvAccounts = `sys_id,name,platform,owned_by,tags,cost_center,notes
a1,payments-bot,aws,alice@example.com,"pci,pii",cc-1,"says ""hi"", twice"
a2,ünïcødé-bøt ✓,gcp,bob@example.com,internal,cc-2,"multi
line"
a3,etl-nightly,azure,,,,
`

func TestCSVRewriteKeepsUnmappedColumnsQuotingAndOrder(t *testing.T) {
	c, sys, p := fileSystem{name: "a.csv", content: csvAccounts, id: "sys_id", fields: csvFields}.open(t)
	got := snapshot(t, c)
	if strings.Join(got.ids, " ") != "a1 a2 a3" {
		t.Fatalf("ids %v", got.ids)
	}
	if v := got.value(sys, "a2", "name"); v.Text() != "ünïcødé-bøt ✓" {
		t.Errorf("unicode name read as %q", v)
	}
	if v := got.value(sys, "a1", "classification"); !v.Equal(nhisync.SetOf("pci", "pii")) {
		t.Errorf("tags read as %v", v)
	}
	if v := got.value(sys, "a3", "owner"); !v.IsZero() {
		t.Errorf("empty cell read as %q", v)
	}
	res := apply(t, c,
		update("a1", set("owner", "alice@example.com", "carol@example.com")),
		update("a3", nhisync.Change{Field: "classification", New: nhisync.SetOf("public", "internal")}),
	)
	for i, r := range res {
		if r.Status != nhisync.WriteApplied {
			t.Errorf("write %d: %s %v", i, r.Status, r.Err)
		}
	}
	want := strings.Replace(csvAccounts, "alice@", "carol@", 1)
	want = strings.Replace(want, "a3,etl-nightly,azure,,,,", `a3,etl-nightly,azure,,"internal,public",,`, 1)
	diff(t, read(t, p), want)
}

func TestCSVKeepsBOMAndCRLF(t *testing.T) {
	in := "\ufeffsys_id,name,platform,owned_by\r\nb1,bot,aws,x@example.com\r\nb2,bot2,gcp,\r\n"
	c, sys, p := fileSystem{name: "b.csv", content: in, id: "sys_id", fields: csvFields[:3]}.open(t)
	if got := snapshot(t, c); got.value(sys, "b1", "owner").Text() != "x@example.com" || len(got.ids) != 2 {
		t.Fatalf("snapshot %v", got)
	}
	apply(t, c, update("b2", set("owner", "", "y@example.com")))
	diff(t, read(t, p), strings.Replace(in, "gcp,\r\n", "gcp,y@example.com\r\n", 1))
}

// TestCSVHeaderMissingAColumnFailsTheRead (issue 6 finding 2): a header
// that lost the id column or a mapped column reads no records as "every
// link vanished" no more: the read fails naming the column and the header.
// A write-only column the file lacks is added on first write.
func TestCSVHeaderMissingAColumnFailsTheRead(t *testing.T) {
	in := "sys_id,name,platform,notes\nm1,bot,aws,keep me\nm2,bot2,gcp,me too\n"
	c, _, _ := fileSystem{name: "m.csv", content: in, id: "sys_id", fields: csvFields}.open(t)
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	wantCode(t, err, nhisync.EINVALID, `the header has no column "owned_by" (mapped to owner); header found: sys_id,name,platform,notes`)
	_, err = c.Apply(t.Context(), []nhisync.Write{update("m1", set("name", "bot", "x"))})
	wantCode(t, err, nhisync.EINVALID, `no column "owned_by"`)

	renamed := "SYS_ID,name,platform\nm1,bot,aws\n"
	c, _, _ = fileSystem{name: "r.csv", content: renamed, id: "sys_id", fields: csvFields[:2]}.open(t)
	err = c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	wantCode(t, err, nhisync.EINVALID, `no column "sys_id" (the id)`)

	c, sys, p := fileSystem{name: "w.csv", content: in, id: "sys_id", fields: csvFields, prep: func(s *nhisync.System) {
		s.Mapping("owner").Direction = nhisync.DirWrite
		s.Mapping("classification").Direction = nhisync.DirWrite
	}}.open(t)
	if got := snapshot(t, c); len(got.ids) != 2 || !got.value(sys, "m1", "owner").IsZero() {
		t.Fatalf("write-only columns: %v", got)
	}
	apply(t, c, update("m2", set("owner", "", "z@example.com")))
	diff(t, read(t, p), "sys_id,name,platform,notes,owned_by\nm1,bot,aws,keep me,\nm2,bot2,gcp,me too,z@example.com\n")
}

// TestCSVOpenQuoteNamesTheLineItStarts: a stray quote swallows the lines
// after it; the error names the line the record starts on (where the quote
// is), not the later line where encoding/csv gave up.
func TestCSVOpenQuoteNamesTheLineItStarts(t *testing.T) {
	in := "sys_id,name,platform,owned_by\nq1,bot,aws,a@example.com\nq2,\"bot2,gcp,b@example.com\nq3,bot3,gcp,c@example.com\nq4,bot4,gcp,\"d\"x\n"
	c, _, _ := fileSystem{name: "q.csv", content: in, id: "sys_id", fields: csvFields[:3]}.open(t)
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `line 3: extraneous or missing " in quoted-field (a quote opened in the record on this line is still open on line 5)`) {
		t.Errorf("snapshot of a CSV with a quote left open on line 3: %v", err)
	}
}

func TestCSVDuplicateIDs(t *testing.T) {
	in := "sys_id,name,platform,owned_by\nd1,bot,aws,a@example.com\nd1,other,gcp,b@example.com\nd2,x,aws,\n"
	c, _, p := fileSystem{name: "d.csv", content: in, id: "sys_id", fields: csvFields[:3]}.open(t)
	if got := snapshot(t, c); len(got.ids) != 3 {
		t.Errorf("Snapshot emitted %v, want both holders of d1 and d2", got.ids)
	}
	res := apply(t, c, update("d1", set("owner", "a@example.com", "c@example.com")), update("d2", set("owner", "", "e@example.com")))
	if res[0].Status != nhisync.WriteFailed || !strings.Contains(nhisync.ErrorMessage(res[0].Err), "unique") {
		t.Errorf("write to a duplicate id: %s %v", res[0].Status, res[0].Err)
	}
	if res[1].Status != nhisync.WriteApplied {
		t.Errorf("write beside it: %s %v", res[1].Status, res[1].Err)
	}
	diff(t, read(t, p), strings.Replace(in, "d2,x,aws,", "d2,x,aws,e@example.com", 1))
}

func TestCSVErrors(t *testing.T) {
	t.Run("malformed", func(t *testing.T) {
		c, _, _ := fileSystem{name: "x.csv", content: "sys_id,name\nq1,\"unclosed\nq2,b\n", id: "sys_id", fields: csvFields[:1]}.open(t)
		err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
		wantCode(t, err, nhisync.EINVALID, "x.csv line")
		_, err = c.Apply(t.Context(), []nhisync.Write{update("q1", set("name", "", "x"))})
		wantCode(t, err, nhisync.EINVALID, "x.csv line")
	})
	t.Run("missing file", func(t *testing.T) {
		c, _, _ := fileSystem{name: "gone.csv", content: "\x00missing", id: "sys_id", fields: csvFields}.open(t)
		err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
		wantCode(t, err, nhisync.EUNAVAIL, "gone.csv does not exist")
		_, err = c.Apply(t.Context(), []nhisync.Write{update("a", set("name", "", "x"))})
		wantCode(t, err, nhisync.EUNAVAIL, "gone.csv does not exist")
		wantCode(t, c.Check(t.Context()), nhisync.EUNAVAIL, "gone.csv")
	})
	t.Run("directory", func(t *testing.T) {
		c, _, p := fileSystem{name: "dir.csv", content: "\x00missing", id: "sys_id", fields: csvFields}.open(t)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		wantCode(t, c.Check(t.Context()), nhisync.EINVALID, "dir.csv is not a regular file (it is a directory)")
	})
}

func TestEmptyFileHoldsNoRecords(t *testing.T) {
	for _, name := range []string{"e.csv", "e.json", "e.jsonl", "e.yaml"} {
		t.Run(name, func(t *testing.T) {
			c, _, _ := fileSystem{name: name, content: "", id: "sys_id", fields: csvFields}.open(t)
			if got := snapshot(t, c); len(got.ids) != 0 {
				t.Errorf("an empty file emitted %v", got.ids)
			}
			if err := c.Check(t.Context()); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestCSVCreateInEmptyFile(t *testing.T) {
	c, _, p := fileSystem{name: "n.csv", content: "", fields: csvFields, prep: func(s *nhisync.System) { s.Provision = true }}.open(t)
	res := apply(t, c, nhisync.Write{Create: true, Changes: []nhisync.Change{
		{Field: "name", New: nhisync.Str("new-bot")}, {Field: "platform", New: nhisync.Str("aws")},
		{Field: "classification", New: nhisync.SetOf("b", "a")},
	}})
	if res[0].Status != nhisync.WriteApplied || res[0].ID != "aws/new-bot" {
		t.Fatalf("create: %+v", res[0])
	}
	diff(t, read(t, p), "name,platform,tags\nnew-bot,aws,\"a,b\"\n")
}

func TestRewriteKeepsPermissions(t *testing.T) {
	c, _, p := fileSystem{name: "p.csv", content: csvAccounts, id: "sys_id", fields: csvFields, mode: 0o640}.open(t)
	apply(t, c, update("a1", set("owner", "alice@example.com", "dan@example.com")))
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Errorf("mode after a rewrite %v, want 0640", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(strings.TrimSuffix(p, "p.csv"))
	if len(entries) != 1 {
		t.Errorf("the rewrite left files behind: %v", entries)
	}
}

func TestRewriteRedoneWhenFileChangesUnderIt(t *testing.T) {
	c, _, p := fileSystem{name: "r.csv", content: csvAccounts, id: "sys_id", fields: csvFields}.open(t)
	concurrent := strings.Replace(csvAccounts, "bob@example.com", "mallory@example.com", 1)
	calls := 0
	file.SetBeforeCheck(c, func() {
		if calls++; calls == 1 {
			if err := os.WriteFile(p, []byte(concurrent), 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	res := apply(t, c,
		update("a1", set("owner", "alice@example.com", "carol@example.com")),
		update("a2", set("owner", "bob@example.com", "erin@example.com")),
	)
	if calls != 2 {
		t.Errorf("rewrite attempted %d times, want 2", calls)
	}
	if res[0].Status != nhisync.WriteApplied || res[1].Status != nhisync.WriteStale {
		t.Errorf("after a concurrent change: %s, %s; want applied, stale", res[0].Status, res[1].Status)
	}
	diff(t, read(t, p), strings.Replace(concurrent, "alice@", "carol@", 1))
}

// TestRewriteRedoneWhenFileChangesKeepingSizeAndTime: an edit in place of
// the same length, its modification time set back, is found (its change
// time moved; the file swapped out would not hash as read either) and the
// batch redone on top of it.
func TestRewriteRedoneWhenFileChangesKeepingSizeAndTime(t *testing.T) {
	testInPlaceEditKept(t, "s.csv", file.SetBeforeCheck, "a same-size change")
}

// testInPlaceEditKept edits a CSV file in place under a rewrite of two
// writes, once, from the rewrite hook that hook installs
// (file.SetBeforeCheck or file.SetBeforeSwap): bob@ becomes rob@, same
// length, its modification time set back. The rewrite must be redone on
// top of the edit: the write on bob's row stale, the other applied.
func testInPlaceEditKept(t *testing.T, name string, hook func(*file.Connector, func()), edit string) {
	t.Helper()
	c, _, p := fileSystem{name: name, content: csvAccounts, id: "sys_id", fields: csvFields}.open(t)
	at := int64(strings.Index(csvAccounts, "bob@"))
	calls := 0
	hook(c, func() {
		if calls++; calls != 1 {
			return
		}
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("rob@"), at); err != nil {
			t.Error(err)
		}
		f.Close()
		if err := os.Chtimes(p, info.ModTime(), info.ModTime()); err != nil {
			t.Error(err)
		}
	})
	res := apply(t, c,
		update("a1", set("owner", "alice@example.com", "carol@example.com")),
		update("a2", set("owner", "bob@example.com", "erin@example.com")),
	)
	if calls != 2 {
		t.Errorf("rewrite attempted %d times, want 2", calls)
	}
	if res[0].Status != nhisync.WriteApplied || res[1].Status != nhisync.WriteStale {
		t.Errorf("after %s: %s, %s; want applied, stale", edit, res[0].Status, res[1].Status)
	}
	diff(t, read(t, p), strings.Replace(strings.Replace(csvAccounts, "bob@", "rob@", 1), "alice@", "carol@", 1))
}

// TestRewriteChecksContentOnce: a CSV rewrite hashes the file as it reads
// it and once more, the file it swapped out; before the swap it compares
// the file's stat only (a whole read of a 400 MB export saved). Fails
// with the content hashed before the swap too: two checks.
func TestRewriteChecksContentOnce(t *testing.T) {
	c, _, p := fileSystem{name: "o.csv", content: csvAccounts, id: "sys_id", fields: csvFields}.open(t)
	apply(t, c, update("a1", set("owner", "alice@example.com", "carol@example.com")))
	if n := file.ContentChecks(c); n != 1 {
		t.Errorf("the rewrite checked the file's content %d times, want 1", n)
	}
	diff(t, read(t, p), strings.Replace(csvAccounts, "alice@", "carol@", 1))
}

// TestInPlaceEditInTheSwapWindowIsKept: an edit in place, of the same
// length and its modification time set back, landing after the stat
// check and before the swap, is found by the hash of the file swapped
// out: swapped back, and the batch redone on top of it.
func TestInPlaceEditInTheSwapWindowIsKept(t *testing.T) {
	testInPlaceEditKept(t, "w.csv", file.SetBeforeSwap, "an edit in the swap window")
}

func TestRewriteGivesUpWhenFileKeepsChanging(t *testing.T) {
	c, _, p := fileSystem{name: "k.csv", content: csvAccounts, id: "sys_id", fields: csvFields}.open(t)
	n := 0
	file.SetBeforeCheck(c, func() {
		n++
		if err := os.WriteFile(p, []byte(csvAccounts+strings.Repeat("\n", n)), 0o644); err != nil {
			t.Error(err)
		}
	})
	_, err := c.Apply(t.Context(), []nhisync.Write{update("a1", set("owner", "alice@example.com", "carol@example.com"))})
	wantCode(t, err, nhisync.ECONFLICT, "kept changing")
	if strings.Contains(read(t, p), "carol@") {
		t.Errorf("a failed batch wrote to the file")
	}
}

// caseTransform is a stand-in for a compiled CEL transform.
type caseTransform struct{ upper bool }

func (c caseTransform) Apply(v nhisync.Value) (nhisync.Value, error) {
	if c.upper {
		return nhisync.Str(strings.ToUpper(v.Text())), nil
	}
	if v.Text() == "fail" {
		return nhisync.Value{}, errors.New("cannot read fail")
	}
	return nhisync.Str(strings.ToLower(v.Text())), nil
}

func TestTransformsAndSeparators(t *testing.T) {
	in := "sys_id,name,platform,owned_by,tags\nt1,bot,aws,ALICE@EXAMPLE.COM,a;b\n"
	c, sys, p := fileSystem{name: "t.csv", content: in, id: "sys_id", fields: csvFields, prep: func(s *nhisync.System) {
		s.Mapping("owner").Read = caseTransform{}
		s.Mapping("owner").Write = caseTransform{upper: true}
		s.Mapping("classification").Join = ";"
	}}.open(t)
	got := snapshot(t, c)
	if v := got.value(sys, "t1", "owner"); v.Text() != "alice@example.com" {
		t.Errorf("read transform gave %q", v)
	}
	if v := got.value(sys, "t1", "classification"); !v.Equal(nhisync.SetOf("a", "b")) {
		t.Errorf("tags joined by ; read as %v", v)
	}
	res := apply(t, c,
		update("t1", set("owner", "alice@example.com", "bob@example.com"),
			nhisync.Change{Field: "classification", Old: nhisync.SetOf("a", "b"), New: nhisync.SetOf("c", "a", "b")}),
	)
	if res[0].Status != nhisync.WriteApplied {
		t.Fatalf("write: %s %v", res[0].Status, res[0].Err)
	}
	diff(t, read(t, p), "sys_id,name,platform,owned_by,tags\nt1,bot,aws,BOB@EXAMPLE.COM,a;b;c\n")
	res = apply(t, c, update("t1", nhisync.Change{Field: "classification", Old: nhisync.SetOf("a", "b", "c"), New: nhisync.SetOf("x;y")}))
	if res[0].Status != nhisync.WriteFailed || !strings.Contains(nhisync.ErrorMessage(res[0].Err), "separator") {
		t.Errorf("an element holding the separator: %s %v", res[0].Status, res[0].Err)
	}
	if err := os.WriteFile(p, []byte("sys_id,name,platform,owned_by,tags\nt1,bot,aws,fail,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	wantCode(t, err, nhisync.EINVALID, "record t1")
}
