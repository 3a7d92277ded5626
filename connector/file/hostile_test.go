package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	"github.com/nhisync/nhisync/connector/file"
)

// Tests of issue 6: input that must not propagate, output that must not
// harm. Each names its finding.

func wantMalformed(t *testing.T, v nhisync.Value, fragment string) {
	t.Helper()
	if p := v.Problem(); p == "" || !strings.Contains(p, fragment) {
		t.Errorf("value %q: problem %q, want one containing %q", v.String(), p, fragment)
	}
}

// Finding 1: a row with fewer fields than the header is never read as
// empty cells (which the engine would take as deliberate clears): every
// field of that record is malformed, naming the line.
func TestCSVShortRowIsMalformedNotEmpty(t *testing.T) {
	in := "sys_id,name,platform,owned_by\na1,bot,aws,x@example.com\na2,bot2\na3,bot3,gcp,y@example.com\n"
	c, sys, p := fileSystem{name: "s.csv", content: in, id: "sys_id", fields: csvFields[:3]}.open(t)
	got := snapshot(t, c)
	if len(got.ids) != 3 {
		t.Fatalf("ids %v", got.ids)
	}
	for _, f := range []string{"name", "platform", "owner"} {
		wantMalformed(t, got.value(sys, "a2", f), "line 3 has 2 of the header's 4 fields")
	}
	if v := got.value(sys, "a3", "owner"); v.Text() != "y@example.com" {
		t.Errorf("the next row read %q", v)
	}
	// A stray separator shifts cells: also malformed, not values.
	c2, sys2, _ := fileSystem{name: "x.csv", content: "sys_id,name,platform\nb1,bot,aws,oops\nb2,ok,gcp,\n", id: "sys_id", fields: csvFields[:2]}.open(t)
	got = snapshot(t, c2)
	wantMalformed(t, got.value(sys2, "b1", "name"), "line 2 has 4 fields but the header has 3")
	if v := got.value(sys2, "b2", "name"); v.Text() != "ok" {
		t.Errorf("an empty trailing cell made the row malformed: %q", v)
	}
	// nhisync does not write into a row it cannot read.
	res := apply(t, c, update("a2", set("owner", "", "z@example.com")))
	if res[0].Status != nhisync.WriteFailed || !strings.Contains(nhisync.ErrorMessage(res[0].Err), "line 3") {
		t.Errorf("write to a short row: %s %v", res[0].Status, res[0].Err)
	}
	diff(t, read(t, p), in)
}

// Finding 1: a last line cut mid-write (no line end, fields missing), or a
// row cut before its id column, fails the whole read with the line.
func TestCSVTornFileFailsTheRead(t *testing.T) {
	torn := "sys_id,name,platform,owned_by\na1,bot,aws,x@example.com\na2,bot2,gc"
	c, _, _ := fileSystem{name: "t.csv", content: torn, id: "sys_id", fields: csvFields[:3]}.open(t)
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	wantCode(t, err, nhisync.EINVALID, "t.csv line 3: the last line is incomplete")
	_, err = c.Apply(t.Context(), []nhisync.Write{update("a1", set("name", "bot", "x"))})
	wantCode(t, err, nhisync.EINVALID, "the last line has no line end")

	noID := "name,platform,sys_id\nbot,aws,a1\nbot2\n"
	c, _, _ = fileSystem{name: "n.csv", content: noID, id: "sys_id", fields: csvFields[:2]}.open(t)
	err = c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	wantCode(t, err, nhisync.EINVALID, `line 3: the row has 1 fields and is cut short before its id column "sys_id"`)

	// A last line with every field but no line end may still be cut in
	// its last cell (alice@exa): that record is malformed, the others read,
	// and nothing is written until the line is ended.
	c, sys, _ := fileSystem{name: "cut.csv", content: "sys_id,name,owned_by\na1,bot,x@example.com\na2,bot2,alice@exa", id: "sys_id", fields: []string{"name=name", "owner=owned_by"}}.open(t)
	got := snapshot(t, c)
	wantMalformed(t, got.value(sys, "a2", "owner"), "line 3, the last, has no line end")
	if got.value(sys, "a1", "owner").Text() != "x@example.com" {
		t.Errorf("the rows before the last: %v", got)
	}
	_, err = c.Apply(t.Context(), []nhisync.Write{update("a1", set("name", "bot", "x"))})
	wantCode(t, err, nhisync.EINVALID, "line 3: the last line has no line end")
}

// Finding 1: a file that changes while it is read (an export still being
// written) is not read this pass: EUNAVAIL naming it, so the engine leaves
// the system unread.
func TestFileChangingDuringReadIsNotRead(t *testing.T) {
	in := "sys_id,name\na1,bot\na2,bot2\n"
	for name, change := range map[string]func(p string){
		"grows": func(p string) {
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("a3,bot3\n")
			f.Close()
		},
		// Same size, modification time put back: only the second read's
		// hash tells.
		"rewritten in place": func(p string) {
			info, _ := os.Stat(p)
			os.WriteFile(p, []byte(strings.Replace(in, "bot2", "evil", 1)), 0o644)
			os.Chtimes(p, info.ModTime(), info.ModTime())
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, _, p := fileSystem{name: "w.csv", content: in, id: "sys_id", fields: csvFields[:1]}.open(t)
			n := 0
			err := c.Snapshot(t.Context(), func(nhisync.Observation) error {
				if n++; n == 1 {
					change(p)
				}
				return nil
			})
			wantCode(t, err, nhisync.EUNAVAIL, "w.csv changed while it was read")
		})
	}
}

// Finding 3: PowerShell's Export-Csv writes a BOM and quotes every cell,
// the header too. A rewrite keeps every line it does not change as it was
// (the quoted header too); the changed row is encoded afresh.
func TestCSVBOMWithQuotedHeaderReads(t *testing.T) {
	in := "\ufeff\"sys_id\",\"name\",\"platform\",\"owned_by\"\r\n\"a1\",\"bot\",\"aws\",\"x@example.com\"\r\n"
	c, sys, p := fileSystem{name: "ps.csv", content: in, id: "sys_id", fields: csvFields[:3]}.open(t)
	got := snapshot(t, c)
	if got.value(sys, "a1", "owner").Text() != "x@example.com" {
		t.Fatalf("snapshot %v", got)
	}
	apply(t, c, update("a1", set("owner", "x@example.com", "y@example.com")))
	diff(t, read(t, p), "\ufeff\"sys_id\",\"name\",\"platform\",\"owned_by\"\r\na1,bot,aws,y@example.com\r\n")
}

// Finding 3: a lone CR inside a cell of a CRLF file, and a one-column row
// holding "", survive a rewrite of another record.
func TestCSVRewriteKeepsLoneCRAndEmptyOneColumnRow(t *testing.T) {
	in := "sys_id,name,notes\r\na1,bot,\"one\rtwo\"\r\na2,bot2,\"line\r\nbreak\"\r\n"
	c, _, p := fileSystem{name: "cr.csv", content: in, id: "sys_id", fields: csvFields[:1]}.open(t)
	apply(t, c, update("a2", set("name", "bot2", "bot3")))
	diff(t, read(t, p), strings.Replace(in, "bot2", "bot3", 1))

	one := "name\nbot\n\"\"\nbot2\n"
	c, _, p = fileSystem{name: "one.csv", content: one, fields: []string{"name=name"}}.open(t)
	apply(t, c, update("bot2", set("name", "bot2", "bot3")))
	diff(t, read(t, p), "name\nbot\n\"\"\nbot3\n")
}

// Finding 4: only regular files are read (a FIFO would block forever, a
// link to /dev/zero grow without bound), files over max_bytes are refused
// before reading, and a value over max_value_bytes is malformed.
func TestFileLimits(t *testing.T) {
	t.Run("fifo", func(t *testing.T) {
		c, _, p := fileSystem{name: "f.csv", content: "\x00missing", id: "sys_id", fields: csvFields[:1]}.open(t)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skip("no FIFOs here:", err)
		}
		err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
		wantCode(t, err, nhisync.EINVALID, "f.csv is not a regular file (it is a named pipe (FIFO))")
		_, err = c.Apply(t.Context(), []nhisync.Write{update("a", set("name", "", "x"))})
		wantCode(t, err, nhisync.EINVALID, "not a regular file")
	})
	t.Run("link to a device", func(t *testing.T) {
		c, _, p := fileSystem{name: "z.csv", content: "\x00missing", id: "sys_id", fields: csvFields[:1]}.open(t)
		if err := os.Symlink("/dev/zero", p); err != nil {
			t.Fatal(err)
		}
		err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
		wantCode(t, err, nhisync.EINVALID, "it is a character device")
	})
	t.Run("max_bytes", func(t *testing.T) {
		c, _, _ := fileSystem{name: "big.csv", content: "sys_id,name\na1,bot\n", id: "sys_id", fields: csvFields[:1],
			settings: nhisync.Settings{"max_bytes": "10B"}}.open(t)
		err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
		wantCode(t, err, nhisync.EINVALID, "big.csv is larger than 10 B (max_bytes)")
	})
	t.Run("bad setting", func(t *testing.T) {
		_, sys, _ := fileSystem{name: "b.csv", content: "", id: "sys_id", fields: csvFields[:1]}.open(t)
		sys.Settings["max_bytes"] = "lots"
		_, err := file.New(sys, conntest.Kind())
		wantCode(t, err, nhisync.EINVALID, "set max_bytes to a positive size")
	})
	t.Run("max_value_bytes", func(t *testing.T) {
		c, sys, _ := fileSystem{name: "v.csv", content: "sys_id,name,owned_by\na1,bot," + strings.Repeat("x", 100) + "\n", id: "sys_id",
			fields: []string{"name=name", "owner=owned_by"}, settings: nhisync.Settings{"max_value_bytes": 64}}.open(t)
		got := snapshot(t, c)
		wantMalformed(t, got.value(sys, "a1", "owner"), "the value is 100 bytes, over the limit of 64")
		if got.value(sys, "a1", "name").Text() != "bot" {
			t.Errorf("a short value was refused")
		}
	})
	t.Run("yaml alias bomb", func(t *testing.T) {
		src := "- sys_id: y1\n  name: bot\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		prev := "a"
		for _, l := range []string{"b", "c", "d", "e", "f", "g", "h"} {
			src += "  " + l + ": &" + l + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
			prev = l
		}
		src += "  tags: *h\n"
		c, sys, _ := fileSystem{name: "bomb.yaml", content: src, id: "sys_id", fields: []string{"name=name", "classification=tags"}}.open(t)
		got := snapshot(t, c)
		wantMalformed(t, got.value(sys, "y1", "classification"), "more than 10000 values")
	})
}

// Finding 4: a read stops when its context is cancelled (SIGINT and
// SIGTERM cancel the pass's context), also inside a whole-file parse.
func TestSnapshotStopsWhenCancelled(t *testing.T) {
	var b strings.Builder
	b.WriteString("sys_id,name\n")
	for i := range 5000 {
		b.WriteString("a" + strings.Repeat("0", 6) + string(rune('a'+i%26)) + ",bot\n")
	}
	c, _, _ := fileSystem{name: "c.csv", content: b.String(), fields: []string{"name=name"}, id: "sys_id"}.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := c.Snapshot(ctx, func(nhisync.Observation) error {
		if n++; n == 1 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 1024 {
		t.Errorf("after cancel: %v, %d records emitted", err, n)
	}
}

// Finding 5: an object where a value belongs, a key given twice, invalid
// UTF-8 and NUL bytes are malformed values (quarantined by validation
// with the reason), not text that travels.
func TestHostileValuesAreMalformed(t *testing.T) {
	jsonl := "{\"sys_id\":\"j1\",\"name\":{\"a\":1},\"owned_by\":\"x@example.com\"}\n" +
		"{\"sys_id\":\"j2\",\"name\":\"bot\",\"owned_by\":\"a@example.com\",\"owned_by\":\"b@example.com\"}\n" +
		"{\"sys_id\":\"j3\",\"name\":\"b\xffd\",\"owned_by\":\"ok@example.com\"}\n"
	c, sys, _ := fileSystem{name: "h.jsonl", content: jsonl, id: "sys_id", fields: []string{"name=name", "owner=owned_by"}}.open(t)
	got := snapshot(t, c)
	wantMalformed(t, got.value(sys, "j1", "name"), "an object where a value belongs")
	if got.value(sys, "j1", "owner").Text() != "x@example.com" {
		t.Errorf("a sound field beside an object: %v", got.values["j1"])
	}
	wantMalformed(t, got.value(sys, "j2", "owner"), "key owned_by appears twice in the object at line 2")
	wantMalformed(t, got.value(sys, "j3", "name"), "not valid UTF-8")
	if got.value(sys, "j3", "owner").Text() != "ok@example.com" {
		t.Errorf("a sound field beside invalid UTF-8: %v", got.values["j3"])
	}

	yml := "- sys_id: y1\n  name: bot\n  owned_by: a@example.com\n  owned_by: b@example.com\n"
	c, sys, _ = fileSystem{name: "h.yaml", content: yml, id: "sys_id", fields: []string{"name=name", "owner=owned_by"}}.open(t)
	got = snapshot(t, c)
	wantMalformed(t, got.value(sys, "y1", "owner"), `key "owned_by" appears twice`)

	csv := "sys_id,name,owned_by\nc1,b\x00t,x@example.com\nc2,b\xc3t,y@example.com\n"
	c, sys, _ = fileSystem{name: "h.csv", content: csv, id: "sys_id", fields: []string{"name=name", "owner=owned_by"}}.open(t)
	got = snapshot(t, c)
	wantMalformed(t, got.value(sys, "c1", "name"), "NUL byte")
	wantMalformed(t, got.value(sys, "c2", "name"), "not valid UTF-8")

	// An id given twice cannot be told: the read fails.
	c, _, _ = fileSystem{name: "d.jsonl", content: "{\"sys_id\":\"a\",\"sys_id\":\"b\"}\n", id: "sys_id", fields: []string{"name=name"}}.open(t)
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	wantCode(t, err, nhisync.EINVALID, "id cannot be read: key sys_id appears twice")
}

// Finding 7: cells nhisync writes that a spreadsheet would run as a
// formula get a ' prefix; the prefix reads back as the value (no change,
// no echo), and csv_formula_guard: false turns it off.
func TestCSVFormulaGuard(t *testing.T) {
	in := "sys_id,name,owned_by\na1,bot,x@example.com\n"
	c, sys, p := fileSystem{name: "g.csv", content: in, id: "sys_id", fields: []string{"name=name", "owner=owned_by"}}.open(t)
	for _, evil := range []string{"=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3"} {
		cur := snapshot(t, c).value(sys, "a1", "owner").Text()
		if res := apply(t, c, update("a1", set("owner", cur, evil))); res[0].Status != nhisync.WriteApplied {
			t.Fatalf("write %q: %s %v", evil, res[0].Status, res[0].Err)
		}
		if line := strings.Split(read(t, p), "\n")[1]; !strings.Contains(line, "'"+evil[:1]) {
			t.Errorf("cell written raw: %q", line)
		}
		if v := snapshot(t, c).value(sys, "a1", "owner"); v.Text() != evil {
			t.Errorf("read back %q, want %q", v.Text(), evil)
		}
		before := read(t, p)
		if res := apply(t, c, update("a1", set("owner", evil, evil))); res[0].Status != nhisync.WriteApplied || read(t, p) != before {
			t.Errorf("the same value again changed the file")
		}
	}
	c, sys, p = fileSystem{name: "off.csv", content: in, id: "sys_id", fields: []string{"name=name", "owner=owned_by"},
		settings: nhisync.Settings{"csv_formula_guard": false}}.open(t)
	apply(t, c, update("a1", set("owner", "x@example.com", "=1+1")))
	diff(t, read(t, p), "sys_id,name,owned_by\na1,bot,=1+1\n")
	if v := snapshot(t, c).value(sys, "a1", "owner"); v.Text() != "=1+1" {
		t.Errorf("read %q", v.Text())
	}
}

// Finding 13: an edit that lands between the final hash check and the
// swap is not overwritten: the swapped-out file no longer hashes as read,
// so it is swapped back and the batch redone on top of the edit.
func TestEditInTheSwapWindowIsKept(t *testing.T) {
	in := "sys_id,name,owned_by\na1,bot,x@example.com\na2,bot2,y@example.com\n"
	c, _, p := fileSystem{name: "e.csv", content: in, id: "sys_id", fields: []string{"name=name", "owner=owned_by"}}.open(t)
	edited := false
	file.SetBeforeSwap(c, func() {
		if edited {
			return
		}
		edited = true
		// Another tool replaces the file the way editors do.
		tmp := filepath.Join(filepath.Dir(p), "editor.tmp")
		os.WriteFile(tmp, []byte(strings.Replace(in, "bot2", "renamed-by-hand", 1)), 0o644)
		os.Rename(tmp, p)
	})
	res := apply(t, c, update("a1", set("owner", "x@example.com", "z@example.com")))
	if res[0].Status != nhisync.WriteApplied {
		t.Fatalf("write: %s %v", res[0].Status, res[0].Err)
	}
	diff(t, read(t, p), "sys_id,name,owned_by\na1,bot,z@example.com\na2,renamed-by-hand,y@example.com\n")
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".e.csv.nhisync-*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// Finding 1, on rewrite: a write to another record never pads a short row
// into a row of empty values (which would read as clears next pass), and
// a column added by a write does not make the other rows short.
func TestCSVRewriteLeavesShortRowShort(t *testing.T) {
	in := "sys_id,name,platform\na1,bot\na2,bot2,gcp\na3,bot3,aws\n"
	c, _, p := fileSystem{name: "p.csv", content: in, id: "sys_id", fields: []string{"name=name", "platform=platform", "owner=owned_by"}, prep: func(s *nhisync.System) {
		s.Mapping("owner").Direction = nhisync.DirWrite
	}}.open(t)
	res := apply(t, c, update("a2", set("owner", "", "z@example.com")), update("a3", set("owner", "", "y@example.com")))
	for i, r := range res {
		if r.Status != nhisync.WriteApplied {
			t.Errorf("write %d: %s %v", i, r.Status, r.Err)
		}
	}
	diff(t, read(t, p), "sys_id,name,platform,owned_by\na1,bot\na2,bot2,gcp,z@example.com\na3,bot3,aws,y@example.com\n")
}

// Finding 1, YAML: a file whose last line has no line end may be cut in
// its last value (owned_by: alice@exa reads as valid YAML): that record is
// malformed, and nothing is written until the line is ended.
func TestYAMLCutLastLineIsMalformed(t *testing.T) {
	in := "- sys_id: y1\n  owned_by: a@example.com\n- sys_id: y2\n  owned_by: alice@exa"
	c, sys, _ := fileSystem{name: "cut.yaml", content: in, id: "sys_id", fields: []string{"owner=owned_by"}}.open(t)
	got := snapshot(t, c)
	wantMalformed(t, got.value(sys, "y2", "owner"), "the record at line 3 may have been cut mid-write")
	if got.value(sys, "y1", "owner").Text() != "a@example.com" {
		t.Errorf("the records before the last: %v", got)
	}
	_, err := c.Apply(t.Context(), []nhisync.Write{update("y1", set("owner", "a@example.com", "b@example.com"))})
	wantCode(t, err, nhisync.EINVALID, "last line has no line end")
}

// Finding 4, in serve mode: the watcher's content hash refuses a FIFO (it
// would block forever) and a device (it would read forever) like a read.
func TestWatchHashRefusesNonRegularFiles(t *testing.T) {
	c, _, p := fileSystem{name: "w.csv", content: "\x00missing", id: "sys_id", fields: csvFields[:1]}.open(t)
	if h, err := file.HashFile(c); h != "gone" || err != nil {
		t.Errorf("missing file: %q, %v", h, err)
	}
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	if h, err := file.HashFile(c); h != "unreadable" || err == nil {
		t.Errorf("FIFO: %q, %v", h, err)
	}
	os.Remove(p)
	if err := os.Symlink("/dev/zero", p); err != nil {
		t.Fatal(err)
	}
	if h, err := file.HashFile(c); h != "unreadable" || err == nil {
		t.Errorf("link to /dev/zero: %q, %v", h, err)
	}
}
