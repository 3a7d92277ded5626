package native_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
	"go.yaml.in/yaml/v3"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want native.Path
		err  string
	}{
		{"owner", native.Path{"owner"}, ""},
		{"spec.owner.name", native.Path{"spec", "owner", "name"}, ""},
		{`metadata.annotations["nhi.example/owner"]`, native.Path{"metadata", "annotations", "nhi.example/owner"}, ""},
		{`["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].manager.value`,
			native.Path{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "manager", "value"}, ""},
		{`a["b"]["c.d"].e`, native.Path{"a", "b", "c.d", "e"}, ""},
		{`a["say \"hi\" \\ now"]`, native.Path{"a", `say "hi" \ now`}, ""},
		{"héllo.wörld", native.Path{"héllo", "wörld"}, ""},
		{"", nil, "empty path"},
		{"a..b", nil, "empty key"},
		{".a", nil, "empty key"},
		{"a.", nil, "ends with a dot"},
		{`a["b`, nil, "unclosed bracket"},
		{`a["b"`, nil, "expected ] after closing quote"},
		{`a[b]`, nil, `expected ["`},
		{`a[""]`, nil, "empty key in brackets"},
		{`a["b"]c`, nil, "unexpected 'c'"},
	} {
		got, err := native.ParsePath(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || nhisync.ErrorCode(err) != nhisync.EINVALID {
				t.Errorf("ParsePath(%q) = %v, %v; want EINVALID containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePath(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
			continue
		}
		// String writes what ParsePath reads back.
		back, err := native.ParsePath(got.String())
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("ParsePath(%q.String() = %q) = %#v, %v", tc.in, got.String(), back, err)
		}
	}
}

func TestPathOnMaps(t *testing.T) {
	doc := map[string]any{
		"name": "bot",
		"metadata": map[string]any{
			"annotations": map[string]any{"nhi.example/owner": "alice"},
		},
		"list": []any{"x"},
	}
	owner := native.Path{"metadata", "annotations", "nhi.example/owner"}
	if v, ok := owner.Get(doc); !ok || v != "alice" {
		t.Errorf("Get = %v, %v", v, ok)
	}
	if _, ok := (native.Path{"metadata", "labels", "x"}).Get(doc); ok {
		t.Errorf("Get of a missing key reported found")
	}
	if _, ok := (native.Path{"name", "x"}).Get(doc); ok {
		t.Errorf("Get through a string reported found")
	}
	if err := (native.Path{"metadata", "labels", "team"}).Set(doc, "core"); err != nil {
		t.Fatal(err)
	}
	if v, _ := (native.Path{"metadata", "labels", "team"}).Get(doc); v != "core" {
		t.Errorf("Set did not create intermediate objects: %v", doc)
	}
	if err := (native.Path{"name", "x"}).Set(doc, 1); nhisync.ErrorCode(err) != nhisync.EINVALID || doc["name"] != "bot" {
		t.Errorf("Set through a string: %v, doc %v", err, doc)
	}
	if err := (native.Path{"list", "x"}).Set(doc, 1); err == nil {
		t.Errorf("Set through a list succeeded")
	}
	if !owner.Delete(doc) || owner.Delete(doc) {
		t.Errorf("Delete should report true once")
	}
	if _, ok := doc["metadata"].(map[string]any)["annotations"]; !ok {
		t.Errorf("Delete removed the parent object")
	}
}

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

func encode(t *testing.T, n *yaml.Node) string {
	t.Helper()
	b, err := yaml.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPathOnNodes(t *testing.T) {
	root := node(t, "name: bot # the bot\ncount: 3\nok: true\nwhen: 2026-01-02T03:04:05Z\nquoted: \"x\"\nflow: [a, b]\nmeta:\n  labels:\n    team: core\nalias: &a {k: v}\nref: *a\n")
	p := func(s string) native.Path {
		path, err := native.ParsePath(s)
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		path string
		want any
	}{
		{"name", "bot"}, {"count", json.Number("3")}, {"ok", true},
		{"when", "2026-01-02T03:04:05Z"}, {"flow", []any{"a", "b"}},
		{"meta.labels.team", "core"}, {"ref.k", "v"}, {"missing", nil}, {"name.x", nil},
	} {
		var got any
		if n := p(tc.path).Node(root); n != nil {
			v, err := native.NodeValue(n)
			if err != nil {
				t.Fatal(err)
			}
			got = v
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.path, got, tc.want)
		}
	}
	set := func(path string, v any) {
		t.Helper()
		if err := p(path).SetNode(root, native.EncodeNode(v, p(path).Node(root))); err != nil {
			t.Fatalf("SetNode %s: %v", path, err)
		}
	}
	set("name", "robot")
	set("count", "4")
	set("ok", "maybe")
	set("when", "2026-02-03T04:05:06Z")
	set("quoted", "y")
	set("flow", []any{"c"})
	set(`meta.annotations["nhi.example/owner"]`, "alice")
	if err := p("name.sub").CheckNode(root); err == nil {
		t.Errorf("CheckNode through a scalar succeeded")
	}
	if err := p("ref.k").SetNode(root, native.EncodeNode("w", nil)); err == nil || !strings.Contains(err.Error(), "alias") {
		t.Errorf("SetNode through an alias: %v", err)
	}
	if !p("meta.labels.team").DeleteNode(root) || p("meta.labels.team").DeleteNode(root) {
		t.Errorf("DeleteNode should report true once")
	}
	want := "name: robot # the bot\ncount: 4\nok: maybe\nwhen: 2026-02-03T04:05:06Z\nquoted: \"y\"\nflow: [c]\nmeta:\n    labels: {}\n    annotations:\n        nhi.example/owner: alice\nalias: &a {k: v}\nref: *a\n"
	if got := encode(t, root); got != want {
		t.Errorf("after edits:\n%s\nwant:\n%s", got, want)
	}
}

func TestEncodeNodeQuotesTextThatWouldReadAsAnotherType(t *testing.T) {
	root := node(t, "a: 1\nb: x\n")
	for _, v := range []string{"true", "12", "null", "2026-01-02"} {
		n := native.EncodeNode(v, native.Path{"b"}.Node(root))
		native.Path{"b"}.SetNode(root, n)
		var back map[string]any
		if err := yaml.Unmarshal([]byte(encode(t, root)), &back); err != nil {
			t.Fatal(err)
		}
		if back["b"] != v {
			t.Errorf("text %q reads back as %#v", v, back["b"])
		}
	}
	// A number stays a number when the new text is one, else becomes text.
	native.Path{"a"}.SetNode(root, native.EncodeNode("2.5", native.Path{"a"}.Node(root)))
	native.Path{"b"}.SetNode(root, native.EncodeNode("x", nil))
	if got := encode(t, root); got != "a: 2.5\nb: x\n" {
		t.Errorf("got %q", got)
	}
}

// upper is a stand-in for a compiled CEL transform.
type upper struct{ fail bool }

func (u upper) Apply(v nhisync.Value) (nhisync.Value, error) {
	if u.fail {
		return nhisync.Value{}, errors.New("boom")
	}
	if v.IsSet() {
		var out []string
		for _, e := range v.Elems() {
			out = append(out, strings.ToUpper(e))
		}
		return nhisync.SetOf(out...), nil
	}
	return nhisync.Str(strings.ToUpper(v.Text())), nil
}

func TestDecode(t *testing.T) {
	str := &nhisync.Mapping{Field: "owner", Name: "owned_by", Type: nhisync.TypeString}
	set := &nhisync.Mapping{Field: "tags", Name: "tags", Type: nhisync.TypeSet}
	semi := &nhisync.Mapping{Field: "tags", Name: "tags", Type: nhisync.TypeSet, Join: ";"}
	up := &nhisync.Mapping{Field: "owner", Name: "o", Type: nhisync.TypeString, Read: upper{}}
	bad := &nhisync.Mapping{Field: "owner", Name: "o", Type: nhisync.TypeString, Read: upper{fail: true}}
	tm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name string
		in   any
		m    *nhisync.Mapping
		want nhisync.Value
		err  string
	}{
		{"string", " alice ", str, nhisync.Str("alice"), ""},
		{"empty string", "  ", str, nhisync.Value{}, ""},
		{"nil", nil, str, nhisync.Value{}, ""},
		{"bytes", []byte("b"), str, nhisync.Str("b"), ""},
		{"json number", json.Number("10.50"), str, nhisync.Str("10.50"), ""},
		{"integral float", float64(42), str, nhisync.Str("42"), ""},
		{"negative float", -0.5, str, nhisync.Str("-0.5"), ""},
		{"big float", 1e20, str, nhisync.Str("1e+20"), ""},
		{"int64", int64(-7), str, nhisync.Str("-7"), ""},
		{"uint8", uint8(7), str, nhisync.Str("7"), ""},
		{"bool", true, str, nhisync.Str("true"), ""},
		{"time", tm, str, nhisync.Str("2026-01-02T02:04:05Z"), ""},
		{"array", []any{"b", "a", "b", json.Number("1"), nil}, set, nhisync.SetOf("a", "b", "1"), ""},
		{"strings", []string{"x"}, set, nhisync.SetOf("x"), ""},
		{"array for a scalar stays a set", []any{"a"}, str, nhisync.SetOf("a"), ""},
		{"text for a set", "pci, pii ,", set, nhisync.SetOf("pci", "pii"), ""},
		{"text with own separator", "a,b;c", semi, nhisync.SetOf("a,b", "c"), ""},
		{"empty text for a set", "", set, nhisync.Value{}, ""},
		{"object is malformed", map[string]any{"b": 1, "a": "x"}, str, nhisync.Malformed("an object where a value belongs; map the key inside it (a.b) instead"), ""},
		{"array of objects is malformed", []any{map[string]any{}}, set, nhisync.Malformed("a list element is an object, expected text"), ""},
		{"invalid", native.Invalid{Reason: "why"}, str, nhisync.Malformed("why"), ""},
		{"unsupported", struct{}{}, str, nhisync.Value{}, "unsupported"},
		{"read transform", "alice", up, nhisync.Str("ALICE"), ""},
		{"failing transform", "alice", bad, nhisync.Value{}, "read transform failed"},
	} {
		got, err := native.Decode(tc.in, tc.m)
		if tc.err != "" {
			if err == nil || !strings.Contains(nhisync.ErrorMessage(err), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) || got.IsSet() != tc.want.IsSet() && !got.IsZero() {
			t.Errorf("%s: Decode = %#v, %v; want %#v", tc.name, got, err, tc.want)
		}
		if s, ok := tc.in.(string); ok {
			if got2, _ := native.DecodeText(s, tc.m); !got2.Equal(got) {
				t.Errorf("%s: DecodeText = %v, Decode = %v", tc.name, got2, got)
			}
		}
	}
}

func TestEncode(t *testing.T) {
	str := &nhisync.Mapping{Field: "owner", Name: "o", Type: nhisync.TypeString}
	set := &nhisync.Mapping{Field: "tags", Name: "t", Type: nhisync.TypeSet}
	pipe := &nhisync.Mapping{Field: "tags", Name: "t", Type: nhisync.TypeSet, Join: "|"}
	up := &nhisync.Mapping{Field: "owner", Name: "o", Type: nhisync.TypeString, Write: upper{}}
	bad := &nhisync.Mapping{Field: "owner", Name: "o", Type: nhisync.TypeString, Write: upper{fail: true}}
	for _, tc := range []struct {
		name   string
		v      nhisync.Value
		m      *nhisync.Mapping
		arrays bool
		want   any
		err    string
	}{
		{"scalar", nhisync.Str("a"), str, false, "a", ""},
		{"zero", nhisync.Value{}, str, true, nil, ""},
		{"empty set", nhisync.SetOf(), set, true, nil, ""},
		{"set as array", nhisync.SetOf("b", "a"), set, true, []any{"a", "b"}, ""},
		{"set as text", nhisync.SetOf("b", "a"), set, false, "a,b", ""},
		{"set with join", nhisync.SetOf("b", "a"), pipe, false, "a|b", ""},
		{"element holding the separator", nhisync.SetOf("a,b"), set, false, nil, "holds the separator"},
		{"element with separator in an array", nhisync.SetOf("a,b"), set, true, []any{"a,b"}, ""},
		{"write transform", nhisync.Str("a"), up, false, "A", ""},
		{"failing transform", nhisync.Str("a"), bad, false, nil, "write transform failed"},
	} {
		got, err := native.Encode(tc.v, tc.m, tc.arrays)
		if tc.err != "" {
			if err == nil || !strings.Contains(nhisync.ErrorMessage(err), tc.err) || nhisync.ErrorCode(err) != nhisync.EINVALID {
				t.Errorf("%s: error %v, want EINVALID %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Encode = %#v, %v; want %#v", tc.name, got, err, tc.want)
		}
	}
}

// TestNodeValueCapsAliasExpansion: a few hundred bytes of nested aliases
// ("billion laughs") would expand to 10^9 values; NodeValue stops at
// MaxAliasValues with an error naming the line.
func TestNodeValueCapsAliasExpansion(t *testing.T) {
	src := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, l := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		src += l + ": &" + l + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = l
	}
	root := node(t, src)
	_, err := native.NodeValue(native.Path{"i"}.Node(root))
	if err == nil || !strings.Contains(err.Error(), "more than") || nhisync.ErrorCode(err) != nhisync.EINVALID {
		t.Fatalf("NodeValue of an alias bomb: %v", err)
	}
	// Ordinary aliases and merges still read.
	root = node(t, "base: &b {team: core, x: 1}\nitem:\n  <<: *b\n  x: 2\n")
	v, err := native.NodeValue(native.Path{"item"}.Node(root))
	if err != nil || !reflect.DeepEqual(v, map[string]any{"team": "core", "x": json.Number("2")}) {
		t.Errorf("merge: %#v, %v", v, err)
	}
}

// TestNodeCheckedRefusesDuplicateKeys: a key given twice on a mapped path
// is refused, not "the first" or "the last".
func TestNodeCheckedRefusesDuplicateKeys(t *testing.T) {
	root := node(t, "owner: a\nmeta: {team: x}\nowner: b\n")
	if _, err := (native.Path{"owner"}).NodeChecked(root); err == nil || !strings.Contains(err.Error(), `"owner" appears twice`) {
		t.Errorf("duplicate key: %v", err)
	}
	if n, err := (native.Path{"meta", "team"}).NodeChecked(root); err != nil || n == nil || n.Value != "x" {
		t.Errorf("unique path: %v, %v", n, err)
	}
	if _, err := native.NodeValue(node(t, "m: {a: 1, a: 2}\n")); err == nil {
		t.Errorf("NodeValue of a mapping with a duplicate key succeeded")
	}
}
