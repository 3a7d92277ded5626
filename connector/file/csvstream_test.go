package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	"pgregory.net/rapid"
)

// TestPropertyStreamedCSVRewriteIsTheLoadedOne: for any CSV file and any
// batch of updates, the streaming rewrite (two reads, only the named rows
// in memory) returns exactly the results of the rewrite that loads the
// whole file, and leaves a file that reads back as that one's does.
func TestPropertyStreamedCSVRewriteIsTheLoadedOne(t *testing.T) {
	dirty, oneRead := 0, 0
	defer func() {
		if !t.Failed() && (dirty == 0 || oneRead == 0) {
			t.Error("no case rewrote the file, or none in one read: the property tested nothing")
		}
		t.Logf("%d cases rewrote the file, %d in one read", dirty, oneRead)
	}()
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "sys.csv")
		kind := conntest.Kind()
		sys := &nhisync.System{
			Name: "test", Connector: "file", Kind: kind.Name, ID: "sys_id", Direction: nhisync.DirBoth,
			Settings: nhisync.Settings{"path": "sys.csv"}, BaseDir: dir,
		}
		fields := []string{"name=name", "owner=owned_by", "classification=tags"}
		if rapid.Bool().Draw(rt, "ids of match fields") {
			// No id column: a record's id is its platform and name.
			sys.ID = ""
			fields = append(fields, "platform=extra")
		}
		for _, f := range fields {
			canon, nat, _ := strings.Cut(f, "=")
			sys.Fields = append(sys.Fields, &nhisync.Mapping{Field: canon, Name: nat, Type: kind.Fields[canon].Type, Direction: nhisync.DirBoth})
		}
		if sys.ID != "" && rapid.Bool().Draw(rt, "new column") {
			// A mapped column the header lacks: a write adds it.
			sys.Fields = append(sys.Fields, &nhisync.Mapping{Field: "platform", Name: "plat", Type: nhisync.TypeString, Direction: nhisync.DirWrite})
		}
		c, err := New(sys, kind)
		if err != nil {
			rt.Fatal(err)
		}
		cell := rapid.OneOf(rapid.SampledFrom([]string{"", "a", "b@x", "x,y", `q"t`, " lead", "=1+1", "l1\nl2", "cr\rlone", "a;b"}), rapid.StringMatching(`[a-c ,"\n]{0,4}`))
		header := []string{"sys_id", "name", "owned_by", "tags", "extra"}
		eol := rapid.SampledFrom([]string{"\n", "\r\n"}).Draw(rt, "eol")
		var b strings.Builder
		if rapid.Bool().Draw(rt, "bom") {
			b.WriteString(bom)
		}
		b.WriteString(strings.Join(header, ",") + eol)
		nrows := rapid.IntRange(0, 8).Draw(rt, "rows")
		var ids []string
		rows := map[string][]string{}
		for i := range nrows {
			id := rapid.SampledFrom([]string{"r1", "r2", "r3", "r4", "r5", "r6", " r1", "'=r2", "r,7"}).Draw(rt, "id")
			ids = append(ids, id)
			width := rapid.SampledFrom([]int{5, 5, 5, 3, 6}).Draw(rt, "width")
			cells := []string{id}
			for range width - 1 {
				cells = append(cells, cell.Draw(rt, "cell"))
			}
			if sys.ID == "" {
				cells[1] = rapid.SampledFrom([]string{"bot", "bot", " bot2", "b,3", `q"4`}).Draw(rt, "name")
			}
			rows[id] = cells
			var rb strings.Builder
			if rapid.IntRange(0, 4).Draw(rt, "blank line") == 0 {
				rb.WriteString(eol) // the parser skips it
			}
			if rapid.Bool().Draw(rt, "quote every cell") {
				// As PowerShell's Export-Csv writes rows.
				for k, c := range cells {
					if k > 0 {
						rb.WriteByte(',')
					}
					rb.WriteString(`"` + strings.ReplaceAll(c, `"`, `""`) + `"`)
				}
				rb.WriteString(eol)
			} else if rapid.IntRange(0, 5).Draw(rt, "raw row") == 0 {
				// Cells written as they are: quotes and separators
				// encoding/csv may refuse or read otherwise.
				rb.WriteString(id + "," + rapid.StringMatching(`[a-c,"\r\n ]{0,8}`).Draw(rt, "raw cells") + eol)
			} else {
				writeCSVRowString(&rb, cells, eol == "\r\n")
			}
			row := rb.String()
			if i == nrows-1 && rapid.IntRange(0, 9).Draw(rt, "torn") == 0 {
				row = strings.TrimSuffix(strings.TrimSuffix(row, "\n"), "\r")
			}
			b.WriteString(row)
		}
		data := []byte(b.String())
		tab, lerr := csvFormat{guard: true, need: c.neededColumns()}.load(data)
		if lerr == nil && sys.ID == "" {
			// Writes name records by the ids their match fields make.
			ids = nil
			for i := range tab.len() {
				ids = append(ids, c.idOf(tab.row(i)))
			}
		}
		var writes []nhisync.Write
		for range rapid.IntRange(1, 4).Draw(rt, "writes") {
			id := rapid.SampledFrom(append([]string{"zz"}, ids...)).Draw(rt, "write id")
			field := rapid.SampledFrom([]string{"name", "owner", "classification", "platform"}).Draw(rt, "field")
			var old, nv nhisync.Value
			if field == "classification" {
				old, nv = nhisync.SetOf(rapid.SliceOfN(cell, 0, 2).Draw(rt, "old")...), nhisync.SetOf("new", "set")
			} else {
				old, nv = nhisync.Str(cell.Draw(rt, "old")), nhisync.Str(cell.Draw(rt, "new"))
			}
			if col := map[string]int{"name": 1, "owner": 2, "classification": 3}[field]; col > 0 && rows[id] != nil && col < len(rows[id]) && rapid.Bool().Draw(rt, "old is current") {
				cur := rows[id][col]
				old = nhisync.Str(cur)
				if field == "classification" {
					old = nhisync.SetOf(strings.Split(cur, ";")...)
				}
			}
			writes = append(writes, nhisync.Write{ID: id, Changes: []nhisync.Change{{Field: field, Old: old, New: nv}}})
		}

		// The loaded rewrite, as Apply did it for every file.
		var want []byte
		var wantRes []nhisync.WriteResult
		if lerr == nil {
			tab, _ = csvFormat{guard: true, need: c.neededColumns()}.load(data)
			a := &applier{c: c, t: tab}
			for _, w := range writes {
				wantRes = append(wantRes, a.apply(w))
			}
			want = data
			if a.dirty {
				dirty++
				if want, err = tab.encode(); err != nil {
					rt.Fatal(err)
				}
			}
		}

		// The one-read rewrite, where it takes the file and batch.
		if err := os.WriteFile(p, data, 0o644); err != nil {
			rt.Fatal(err)
		}
		byID := map[string][]int{}
		for i, w := range writes {
			byID[w.ID] = append(byID[w.ID], i)
		}
		got, err := c.rewriteCSV(context.Background(), c.format.(csvFormat), p, writes, byID)
		if !errors.Is(err, errSlowPath) {
			if lerr != nil {
				rt.Fatalf("load failed (%v) but the one-read rewrite did not (%v)", lerr, err)
			}
			if err != nil {
				rt.Fatal(err)
			}
			oneRead++
			sameRewrite(rt, data, want, got, wantRes, p)
		}

		if err := os.WriteFile(p, data, 0o644); err != nil {
			rt.Fatal(err)
		}
		got, err = c.Apply(context.Background(), writes)
		if lerr != nil {
			if err == nil {
				rt.Fatalf("load failed (%v) but the streamed rewrite did not", lerr)
			}
			if nhisync.ErrorMessage(err) != nhisync.ErrorMessage(c.readError(lerr)) {
				rt.Fatalf("errors differ:\nstreamed %v\nloaded   %v", err, c.readError(lerr))
			}
			return
		}
		if err != nil {
			rt.Fatal(err)
		}
		sameRewrite(rt, data, want, got, wantRes, p)
	})
}

// sameRewrite fails unless a rewrite of data that left the file at p and
// returned got is the loaded rewrite's (want, wantRes).
func sameRewrite(rt *rapid.T, data, want []byte, got, wantRes []nhisync.WriteResult, p string) {
	if len(got) != len(wantRes) {
		rt.Fatalf("%d results, want %d", len(got), len(wantRes))
	}
	for i := range got {
		if got[i].Status != wantRes[i].Status || got[i].ID != wantRes[i].ID || (got[i].Err == nil) != (wantRes[i].Err == nil) ||
			got[i].Err != nil && got[i].Err.Error() != wantRes[i].Err.Error() {
			rt.Fatalf("result %d: streamed %+v, loaded %+v", i, got[i], wantRes[i])
		}
	}
	after, err := os.ReadFile(p)
	if err != nil {
		rt.Fatal(err)
	}
	// Lines the streamed rewrite does not change are copied as they
	// were, where the loaded one re-encoded them: both read back alike.
	if !reflect.DeepEqual(parseCSV(rt, after), parseCSV(rt, want)) || bytes.HasPrefix(after, []byte(bom)) != bytes.HasPrefix(want, []byte(bom)) {
		rt.Fatalf("file reads back differently:\nstreamed %q\nloaded   %q", after, want)
	}
	if !bytes.Equal(data, want) && bytes.Equal(data, after) {
		rt.Fatalf("the loaded rewrite changed the file, the streamed one did not:\n%q", want)
	}
}

func parseCSV(rt *rapid.T, data []byte) [][]string {
	cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte(bom))))
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		rt.Fatalf("rewritten file does not parse: %v\n%q", err, data)
	}
	return recs
}

func writeCSVRowString(sb *strings.Builder, rec []string, crlf bool) {
	var b bytes.Buffer
	writeCSVRow(&b, rec, crlf)
	sb.Write(b.Bytes())
}

// TestPropertyScanReadsAsEncodingCSV: where the one-read rewrite's scan
// takes every record of a file, encoding/csv reads the file without error
// as the same records, each holding the cells the scan took out.
func TestPropertyScanReadsAsEncodingCSV(t *testing.T) {
	taken := 0
	defer func() {
		if !t.Failed() && taken == 0 {
			t.Error("the scan took no file: the property tested nothing")
		}
	}()
	rapid.Check(t, func(rt *rapid.T) {
		data := rapid.StringMatching(`([ab,"\r ]{0,10}\n){0,5}`).Draw(rt, "data")
		// The cells wanted end early or late in a record: past the last
		// one the scan reads only the quotes.
		want := rapid.SampledFrom([][]int{{0}, {1}, {0, 2}, {}}).Draw(rt, "want")
		s := &csvScanner{br: bufio.NewReaderSize(strings.NewReader(data), 64)}
		var got [][][]byte
		cells := make([][]byte, len(want))
		for {
			raw, blank, _, quotes, err := s.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return // left to the two-read rewrite
			}
			if blank {
				continue
			}
			var ok bool
			if _, ok = scanCells(raw, quotes, want, cells, nil); !ok {
				return
			}
			got = append(got, slices.Clone(cells))
		}
		taken++
		cr := csv.NewReader(strings.NewReader(data))
		cr.FieldsPerRecord = -1
		recs, err := cr.ReadAll()
		if err != nil {
			rt.Fatalf("the scan took %q, encoding/csv fails: %v", data, err)
		}
		if len(recs) != len(got) {
			rt.Fatalf("%q: the scan read %d records, encoding/csv %d", data, len(got), len(recs))
		}
		for i, rec := range recs {
			for k, col := range want {
				var cell []byte
				if col < len(rec) {
					cell = []byte(rec[col])
				}
				if !bytes.Equal(got[i][k], cell) || (got[i][k] == nil) != (col >= len(rec)) {
					rt.Fatalf("%q record %d column %d: scan %q, encoding/csv %q", data, i, col, got[i][k], cell)
				}
			}
		}
	})
}
