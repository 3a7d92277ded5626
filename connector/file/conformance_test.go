package file_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	_ "github.com/nhisync/nhisync/connector/file"
	"go.yaml.in/yaml/v3"
)

// harness keeps a file of one format, written and read with the standard
// libraries rather than the connector, so the suite checks the connector
// against files as other programs make them.
type harness struct {
	ext    string
	format string // the format setting; "" to go by the extension
	encode func(t *testing.T, sys *nhisync.System, recs []map[string]any) []byte
	decode func(t *testing.T, data []byte) []map[string]any
}

func (h harness) Features() conntest.Features {
	return conntest.Features{Ordered: true, CompositeID: true}
}

func path(sys *nhisync.System) string {
	return filepath.Join(sys.BaseDir, sys.Settings.String("path"))
}

func (h harness) Setup(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	sys.BaseDir = t.TempDir()
	sys.Settings = nhisync.Settings{"path": "accounts." + h.ext}
	if h.format != "" {
		sys.Settings["format"] = h.format
	}
	h.save(t, sys, recs)
}

func (h harness) save(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	if err := os.WriteFile(path(sys), h.encode(t, sys, recs), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h harness) load(t *testing.T, sys *nhisync.System) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path(sys))
	if err != nil {
		t.Fatal(err)
	}
	return h.decode(t, data)
}

func (h harness) find(t *testing.T, sys *nhisync.System, recs []map[string]any, id string) int {
	t.Helper()
	for i, r := range recs {
		if conntest.IDOf(sys, r) == id {
			return i
		}
	}
	return -1
}

func (h harness) Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any) {
	t.Helper()
	recs := h.load(t, sys)
	i := h.find(t, sys, recs, id)
	if i < 0 {
		t.Fatalf("Edit: no record %q", id)
	}
	for k, v := range native {
		if v == nil {
			delete(recs[i], k)
		} else {
			recs[i][k] = v
		}
	}
	h.save(t, sys, recs)
}

func (h harness) Remove(t *testing.T, sys *nhisync.System, id string) {
	t.Helper()
	recs := h.load(t, sys)
	i := h.find(t, sys, recs, id)
	if i < 0 {
		t.Fatalf("Remove: no record %q", id)
	}
	h.save(t, sys, slices.Delete(recs, i, i+1))
}

func (h harness) Raw(t *testing.T, sys *nhisync.System, id string) map[string]any {
	t.Helper()
	recs := h.load(t, sys)
	if i := h.find(t, sys, recs, id); i >= 0 {
		return recs[i]
	}
	return nil
}

// treeValue turns a suite value into what JSON and YAML hold.
func treeRecord(rec map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range rec {
		out[k] = v
	}
	return out
}

var csvHarness = harness{
	ext: "csv",
	encode: func(t *testing.T, sys *nhisync.System, recs []map[string]any) []byte {
		cols := slices.Clone(conntest.Columns)
		for _, r := range recs {
			for k := range r {
				if !slices.Contains(cols, k) {
					cols = append(cols, k)
				}
			}
		}
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.Write(cols)
		for _, r := range recs {
			r = conntest.Flatten(sys, r)
			row := make([]string, len(cols))
			for i, c := range cols {
				row[i] = conntest.Text(r[c])
			}
			w.Write(row)
		}
		w.Flush()
		return b.Bytes()
	},
	decode: func(t *testing.T, data []byte) []map[string]any {
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			t.Fatalf("the connector left a CSV file encoding/csv cannot read: %v", err)
		}
		var out []map[string]any
		for _, r := range rows[1:] {
			m := map[string]any{}
			for i, c := range rows[0] {
				m[c] = r[i]
			}
			out = append(out, m)
		}
		return out
	},
}

func jsonRecords(recs []map[string]any) []map[string]any {
	out := make([]map[string]any, len(recs))
	for i, r := range recs {
		out[i] = treeRecord(r)
	}
	return out
}

var jsonHarness = harness{
	ext: "json",
	encode: func(t *testing.T, sys *nhisync.System, recs []map[string]any) []byte {
		b, err := json.MarshalIndent(jsonRecords(recs), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return append(b, '\n')
	},
	decode: func(t *testing.T, data []byte) []map[string]any {
		var out []map[string]any
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("the connector left invalid JSON: %v\n%s", err, data)
		}
		return out
	},
}

var jsonlHarness = harness{
	ext: "jsonl",
	encode: func(t *testing.T, sys *nhisync.System, recs []map[string]any) []byte {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		for _, r := range jsonRecords(recs) {
			if err := enc.Encode(r); err != nil {
				t.Fatal(err)
			}
		}
		return b.Bytes()
	},
	decode: func(t *testing.T, data []byte) []map[string]any {
		var out []map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		for dec.More() {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("the connector left invalid JSONL: %v\n%s", err, data)
			}
			out = append(out, m)
		}
		return out
	},
}

var yamlHarness = harness{
	ext: "yaml",
	encode: func(t *testing.T, sys *nhisync.System, recs []map[string]any) []byte {
		b, err := yaml.Marshal(jsonRecords(recs))
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte("# service accounts, kept by the data team\n"), b...)
	},
	decode: func(t *testing.T, data []byte) []map[string]any {
		var out []map[string]any
		if err := yaml.Unmarshal(data, &out); err != nil {
			t.Fatalf("the connector left invalid YAML: %v\n%s", err, data)
		}
		return out
	},
}

func TestConformance(t *testing.T) {
	for name, h := range map[string]harness{"csv": csvHarness, "json": jsonHarness, "jsonl": jsonlHarness, "yaml": yamlHarness} {
		t.Run(name, func(t *testing.T) { conntest.Run(t, "file", h) })
	}
	// The format setting overrides the extension.
	t.Run("format-setting", func(t *testing.T) {
		h := jsonlHarness
		h.ext, h.format = "export", "jsonl"
		conntest.Run(t, "file", h)
	})
}
