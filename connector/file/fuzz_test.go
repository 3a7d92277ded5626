package file_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"go.yaml.in/yaml/v3"
)

// The fuzz targets feed arbitrary files to the readers and rewriters. The
// property: whatever reads, a write to one record reads back as that
// write and nothing else — every other record and field reads as before,
// and every column and key nhisync does not map is kept. Seeds run in
// `make test`; `make fuzz` explores.

var fuzzFields = []string{"name=name", "owner=owned_by", "classification=tags"}

func fuzzRoundTrip(t *testing.T, name string, content []byte) {
	c, sys, p := fileSystem{name: name, content: string(content), id: "sys_id", fields: fuzzFields}.open(t)
	before, ok := trySnapshot(t, c)
	if !ok {
		return
	}
	id := ""
	for _, cand := range before.ids {
		if !slices.Contains(before.ids[slices.Index(before.ids, cand)+1:], cand) && sound(before.values[cand]) {
			id = cand
			break
		}
	}
	if id == "" {
		return
	}
	unmappedBefore := unmapped(t, name, []byte(read(t, p)))
	const owner = "fuzz@example.com"
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: id, Changes: []nhisync.Change{{Field: "owner", Old: before.value(sys, id, "owner"), New: nhisync.Str(owner)}}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		return // refused (a path through a scalar, a changed file): nothing to check
	}
	after, ok := trySnapshot(t, c)
	if !ok {
		t.Fatalf("the file nhisync wrote does not read:\n%q", read(t, p))
	}
	if !slices.Equal(before.ids, after.ids) {
		t.Fatalf("ids %q became %q; file:\n%q", before.ids, after.ids, read(t, p))
	}
	for _, rid := range before.ids {
		for i, m := range sys.Fields {
			want := before.values[rid][i]
			if rid == id && m.Field == "owner" {
				want = nhisync.Str(owner)
			}
			got := after.values[rid][i]
			if want.Problem() != "" && got.Problem() != "" {
				continue // still malformed (its line may have moved: blank lines go)
			}
			if !got.Equal(want) {
				t.Fatalf("record %q field %s read %q, want %q; file:\n%q", rid, m.Field, got.String(), want.String(), read(t, p))
			}
		}
	}
	if got := unmapped(t, name, []byte(read(t, p))); !reflect.DeepEqual(got, unmappedBefore) {
		t.Fatalf("unmapped data changed:\n%#v\nto\n%#v", unmappedBefore, got)
	}
}

func trySnapshot(t *testing.T, c nhisync.Connector) (observed, bool) {
	o := observed{values: map[string][]nhisync.Value{}}
	err := c.Snapshot(t.Context(), func(obs nhisync.Observation) error {
		o.ids = append(o.ids, obs.ID)
		o.values[obs.ID] = slices.Clone(obs.Values)
		return nil
	})
	return o, err == nil
}

func sound(vals []nhisync.Value) bool {
	for _, v := range vals {
		if v.Problem() != "" {
			return false
		}
	}
	return true
}

// unmapped returns what a file holds outside the mapped fields, in order.
func unmapped(t *testing.T, name string, data []byte) any {
	mapped := map[string]bool{"name": true, "owned_by": true, "tags": true}
	switch {
	case strings.HasSuffix(name, ".csv"):
		data = bytes.TrimPrefix(data, []byte("\ufeff"))
		r := csv.NewReader(bytes.NewReader(data))
		r.FieldsPerRecord = -1
		recs, err := r.ReadAll()
		if err != nil || len(recs) == 0 {
			return err != nil
		}
		var out [][]string
		for _, rec := range recs[1:] {
			var keep []string
			for i, h := range recs[0] {
				if !mapped[strings.TrimSpace(h)] && i < len(rec) {
					keep = append(keep, rec[i])
				}
			}
			out = append(out, keep)
		}
		return out
	case strings.HasSuffix(name, ".yaml"):
		var recs []map[string]any
		if err := yaml.Unmarshal(data, &recs); err != nil {
			return err.Error()
		}
		return dropMapped(recs, mapped)
	case strings.HasSuffix(name, ".jsonl"):
		var recs []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				return err.Error()
			}
			recs = append(recs, m)
		}
		return dropMapped(recs, mapped)
	default:
		var recs []map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&recs); err != nil {
			return err.Error()
		}
		return dropMapped(recs, mapped)
	}
}

func dropMapped(recs []map[string]any, mapped map[string]bool) []map[string]any {
	for _, r := range recs {
		for k := range mapped {
			delete(r, k)
		}
	}
	return recs
}

func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		csvAccounts,
		"sys_id,name,owned_by,tags,notes\r\na1,bot,x@example.com,\"a,b\",\"one\rtwo\"\r\n",
		"\ufeff\"sys_id\",\"name\",\"owned_by\",\"tags\"\r\n\"a1\",\"bot\",\"=1+1\",\"\"\r\n",
		"sys_id,name,owned_by,tags\na1,bot\na2,b2,'=x,\n",
		"sys_id,name,owned_by,tags,x\na1,\" lead\",,,\"\"\"q\"\"\"\n",
		"sys_id,name,owned_by,tags\na1,bot,x,t\na1,dup,y,t\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, "f.csv", data) })
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`[{"sys_id":"a1","name":"bot","owned_by":"x@example.com","tags":["a","b"],"n":10.50,"meta":{"k":[1,2]}}]`,
		"[\n  {\"sys_id\": \"a1\", \"name\": \"bot\"},\n  {\"sys_id\": \"a2\", \"owned_by\": {\"a\": 1}}\n]\n",
		`[{"sys_id":"a1","owned_by":"x","owned_by":"y"},{"sys_id":"a2","name":"\u2028"}]`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, "f.json", data) })
}

func FuzzJSONL(f *testing.F) {
	for _, s := range []string{
		"{\"sys_id\":\"a1\",\"name\":\"bot\",\"owned_by\":\"x@example.com\",\"x\":1}\n\n{\"sys_id\":\"a2\",\"tags\":[\"p\"]}\n",
		"{\"sys_id\":\"a1\",\"name\":\"b\xffd\"}\r\n{\"sys_id\":\"a2\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, "f.jsonl", data) })
}

func FuzzYAML(f *testing.F) {
	for _, s := range []string{
		"# register\n- sys_id: a1 # first\n  name: bot\n  owned_by: \"x@example.com\"\n  tags: [a, b]\n  extra: {k: v}\n- sys_id: a2\n  name: etl\n",
		"- &r {sys_id: a1, name: bot}\n- sys_id: a2\n  meta: *r\n",
		"- sys_id: a1\n  owned_by: 12\n  tags:\n  - x\n",
		"[]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, "f.yaml", data) })
}
