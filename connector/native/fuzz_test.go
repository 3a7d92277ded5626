package native_test

import (
	"reflect"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
	"go.yaml.in/yaml/v3"
)

// FuzzParsePath: a path that parses prints as text that parses back to
// it, and a refused one is EINVALID.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"owner", `metadata.annotations["nhi.example/owner"]`, `a["say \"hi\" \\ now"]`, `["x"].y`, "a..b", `a["b`, `a[""]`, "é.ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := native.ParsePath(s)
		if err != nil {
			if nhisync.ErrorCode(err) != nhisync.EINVALID {
				t.Fatalf("ParsePath(%q): %v is not EINVALID", s, err)
			}
			return
		}
		back, err := native.ParsePath(p.String())
		if err != nil || !reflect.DeepEqual(back, p) {
			t.Fatalf("ParsePath(%q) = %#v; its String %q parses as %#v, %v", s, p, p.String(), back, err)
		}
	})
}

// FuzzNodeValue: any YAML document decodes within the alias budget or
// fails with EINVALID, and decoding a value never panics.
func FuzzNodeValue(f *testing.F) {
	for _, s := range []string{"a: 1", "- &a [x, *a]", "a: &a [1, 2]\nb: [*a, *a, *a]\n", "<<: {a: 1}\nb: 2", "{a: 1, a: 2}", "? [1]\n: x"} {
		f.Add(s)
	}
	m := &nhisync.Mapping{Field: "owner", Name: "o", Type: nhisync.TypeString}
	set := &nhisync.Mapping{Field: "tags", Name: "t", Type: nhisync.TypeSet}
	f.Fuzz(func(t *testing.T, s string) {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(s), &doc) != nil {
			return
		}
		v, err := native.NodeValue(&doc)
		if err != nil {
			if nhisync.ErrorCode(err) != nhisync.EINVALID {
				t.Fatalf("NodeValue: %v is not EINVALID", err)
			}
			return
		}
		for _, mm := range []*nhisync.Mapping{m, set} {
			if _, err := native.Decode(v, mm); err != nil && nhisync.ErrorCode(err) != nhisync.EINVALID {
				t.Fatalf("Decode: %v", err)
			}
		}
	})
}
