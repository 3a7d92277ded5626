package file_test

import (
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

var nestedFields = []string{
	"name=spec.name", "platform=spec.platform",
	`owner=metadata.annotations["nhi.example/owner"]`,
	"classification=tags", "lifecycle=state",
}

const jsonAccounts = `[
  {
    "id": "k1",
    "spec": {"name": "payments-bot", "platform": "aws"},
    "metadata": {"annotations": {"nhi.example/owner": "alice@example.com", "other": 1}},
    "score": 10.50,
    "enabled": true,
    "url": "https://example.com/?a=1&b=<2>",
    "tags": ["pii"],
    "state": null
  },
  {"id": "k2", "spec": {"name": "ci", "platform": "gcp"}, "score": 1e3, "tags": "pci, internal"}
]
`

func TestJSONRewriteKeepsKeyOrderAndUntouchedRecords(t *testing.T) {
	c, sys, p := fileSystem{name: "a.json", content: jsonAccounts, id: "id", fields: nestedFields}.open(t)
	got := snapshot(t, c)
	if v := got.value(sys, "k1", "owner"); v.Text() != "alice@example.com" {
		t.Errorf("owner through a bracketed path: %q", v)
	}
	if v := got.value(sys, "k1", "lifecycle"); !v.IsZero() {
		t.Errorf("null read as %q", v)
	}
	if v := got.value(sys, "k2", "classification"); !v.Equal(nhisync.SetOf("internal", "pci")) {
		t.Errorf("a set held as text read as %v", v)
	}
	res := apply(t, c, update("k1",
		set("owner", "alice@example.com", "carol@example.com"),
		set("lifecycle", "", "active"),
		nhisync.Change{Field: "classification", Old: nhisync.SetOf("pii"), New: nhisync.SetOf("pii", "pci")},
	))
	if res[0].Status != nhisync.WriteApplied {
		t.Fatalf("write: %s %v", res[0].Status, res[0].Err)
	}
	diff(t, read(t, p), `[
  {
    "id": "k1",
    "spec": {
      "name": "payments-bot",
      "platform": "aws"
    },
    "metadata": {
      "annotations": {
        "nhi.example/owner": "carol@example.com",
        "other": 1
      }
    },
    "score": 10.50,
    "enabled": true,
    "url": "https://example.com/?a=1&b=<2>",
    "tags": [
      "pci",
      "pii"
    ],
    "state": "active"
  },
  {"id": "k2", "spec": {"name": "ci", "platform": "gcp"}, "score": 1e3, "tags": "pci, internal"}
]
`)
	// A set held as text stays text; clearing a value removes its key;
	// a path through a missing object creates it.
	res = apply(t, c, update("k2",
		nhisync.Change{Field: "classification", Old: nhisync.SetOf("internal", "pci"), New: nhisync.SetOf("pci")},
		set("owner", "", "dave@example.com"),
	), update("k1", set("lifecycle", "active", "")))
	if res[0].Status != nhisync.WriteApplied || res[1].Status != nhisync.WriteApplied {
		t.Fatalf("writes: %+v", res)
	}
	out := read(t, p)
	for _, want := range []string{`"tags": "pci",`, `"metadata": {
      "annotations": {
        "nhi.example/owner": "dave@example.com"
      }
    }`} {
		if !strings.Contains(out, want) {
			t.Errorf("file lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"state"`) {
		t.Errorf("a cleared key is still there:\n%s", out)
	}
}

func TestJSONKeepsNumbersAndBooleansTyped(t *testing.T) {
	in := `[{"id":7,"spec":{"name":"n","platform":"aws"},"state":3,"tags":true}]`
	c, sys, p := fileSystem{name: "n.json", content: in, id: "id", fields: nestedFields}.open(t)
	got := snapshot(t, c)
	if len(got.ids) != 1 || got.ids[0] != "7" {
		t.Fatalf("numeric id read as %v", got.ids)
	}
	if v := got.value(sys, "7", "lifecycle"); v.Text() != "3" {
		t.Errorf("number read as %q", v)
	}
	apply(t, c, update("7", set("lifecycle", "3", "4")))
	diff(t, read(t, p), `[{"id":7,"spec":{"name":"n","platform":"aws"},"state":4,"tags":true}]`)
	apply(t, c, update("7", set("lifecycle", "4", "four")))
	diff(t, read(t, p), `[{"id":7,"spec":{"name":"n","platform":"aws"},"state":"four","tags":true}]`)
}

func TestJSONCreate(t *testing.T) {
	create := nhisync.Write{Create: true, Changes: []nhisync.Change{
		{Field: "name", New: nhisync.Str("new")}, {Field: "platform", New: nhisync.Str("aws")},
		{Field: "classification", New: nhisync.SetOf("x")},
	}}
	for _, tc := range []struct{ in, want string }{
		{"", "[\n  {\n    \"spec\": {\n      \"name\": \"new\",\n      \"platform\": \"aws\"\n    },\n    \"tags\": [\n      \"x\"\n    ]\n  }\n]\n"},
		{"[]", `[{"spec":{"name":"new","platform":"aws"},"tags":["x"]}]`},
		{"[\n]\n", "[\n  {\n    \"spec\": {\n      \"name\": \"new\",\n      \"platform\": \"aws\"\n    },\n    \"tags\": [\n      \"x\"\n    ]\n  }\n]\n"},
		{"[\n\t{\"spec\": {\"name\": \"old\", \"platform\": \"gcp\"}}\n]", "[\n\t{\"spec\": {\"name\": \"old\", \"platform\": \"gcp\"}},\n\t{\n\t\t\"spec\": {\n\t\t\t\"name\": \"new\",\n\t\t\t\"platform\": \"aws\"\n\t\t},\n\t\t\"tags\": [\n\t\t\t\"x\"\n\t\t]\n\t}\n]"},
	} {
		c, _, p := fileSystem{name: "c.json", content: tc.in, fields: nestedFields, prep: func(s *nhisync.System) { s.Provision = true }}.open(t)
		res := apply(t, c, create)
		if res[0].Status != nhisync.WriteApplied || res[0].ID != "aws/new" {
			t.Errorf("create in %q: %+v", tc.in, res[0])
		}
		diff(t, read(t, p), tc.want)
	}
}

func TestJSONErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, fragment string }{
		{"object", `{"id": 1}`, "line 1: expected a JSON array of objects"},
		{"element", "[\n{\"id\": 1},\n\"x\"\n]", "line 3: element 2 of the array is not an object"},
		{"syntax", "[\n{\"id\": 1},\n{\"id\" 2}\n]", "line 3: invalid JSON"},
		{"trailing", "[]\n[]", "line 1: unexpected data after the JSON array"},
		{"jsonl", "{\"id\": 1}\n\n{oops}\n", "line 3: invalid JSON object"},
		{"jsonl-array", "[1]\n", "line 1: invalid JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "e.json"
			if strings.HasPrefix(tc.name, "jsonl") {
				name = "e.jsonl"
			}
			c, _, _ := fileSystem{name: name, content: tc.in, id: "id", fields: nestedFields}.open(t)
			err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
			wantCode(t, err, nhisync.EINVALID, tc.fragment)
			_, err = c.Apply(t.Context(), []nhisync.Write{update("1", set("name", "", "x"))})
			wantCode(t, err, nhisync.EINVALID, tc.fragment)
		})
	}
}

func TestJSONLRewriteKeepsUntouchedLines(t *testing.T) {
	in := "{\"id\": \"l1\",  \"spec\": {\"name\": \"a\", \"platform\": \"aws\"}, \"x\": 1.0}\n\n" +
		"{\"id\":\"l2\",\"spec\":{\"name\":\"b\",\"platform\":\"gcp\"},\"tags\":[\"p\"],\"z\":\"<&>\"}\n" +
		"{\"id\":\"l3\",\"spec\":{\"name\":\"c\",\"platform\":\"gcp\"}}"
	c, _, p := fileSystem{name: "l.jsonl", content: in, id: "id", fields: nestedFields, prep: func(s *nhisync.System) { s.Provision = true }}.open(t)
	if got := snapshot(t, c); strings.Join(got.ids, " ") != "l1 l2 l3" {
		t.Fatalf("ids %v", got.ids)
	}
	res := apply(t, c,
		update("l2", nhisync.Change{Field: "classification", Old: nhisync.SetOf("p"), New: nhisync.SetOf("p", "q")}),
		nhisync.Write{Create: true, Changes: []nhisync.Change{{Field: "name", New: nhisync.Str("d")}, {Field: "platform", New: nhisync.Str("k8s")}}},
	)
	if res[0].Status != nhisync.WriteApplied || res[1].Status != nhisync.WriteApplied || len(res[1].ID) != 16 {
		t.Fatalf("writes: %+v", res)
	}
	want := "{\"id\": \"l1\",  \"spec\": {\"name\": \"a\", \"platform\": \"aws\"}, \"x\": 1.0}\n\n" +
		"{\"id\":\"l2\",\"spec\":{\"name\":\"b\",\"platform\":\"gcp\"},\"tags\":[\"p\",\"q\"],\"z\":\"<&>\"}\n" +
		"{\"id\":\"l3\",\"spec\":{\"name\":\"c\",\"platform\":\"gcp\"}}\n" +
		"{\"id\":\"" + res[1].ID + "\",\"spec\":{\"name\":\"d\",\"platform\":\"k8s\"}}\n"
	diff(t, read(t, p), want)
}

const yamlCatalog = `# Catalog of service accounts. Owned by data-governance.
- name: payments-bot   # the card processor
  platform: aws
  steward: "alice@example.com"
  tags: [pii, pci]
  metadata:
    annotations:
      nhi.example/owner: alice@example.com
  rotated: 2026-01-02T03:04:05Z
  description: |
    Moves money.
    Carefully.

# Retired soon.
- name: etl-nightly
  platform: gcp
  tags:
  - internal
  count: 3
`

// The YAML encoder drops blank lines between list items; comments, key
// order, quoting, flow style and block scalars stay.
func TestYAMLRewriteKeepsCommentsOrderAndStyle(t *testing.T) {
	fields := []string{"name=name", "platform=platform", "owner=steward", "classification=tags", "last_rotated=rotated", "lifecycle=count"}
	c, sys, p := fileSystem{name: "c.yaml", content: yamlCatalog, fields: fields}.open(t)
	got := snapshot(t, c)
	if strings.Join(got.ids, " ") != "aws/payments-bot gcp/etl-nightly" {
		t.Fatalf("ids %v", got.ids)
	}
	if v := got.value(sys, "aws/payments-bot", "last_rotated"); v.Text() != "2026-01-02T03:04:05Z" {
		t.Errorf("timestamp read as %q", v)
	}
	res := apply(t, c,
		update("aws/payments-bot", set("owner", "alice@example.com", "carol@example.com"),
			nhisync.Change{Field: "classification", Old: nhisync.SetOf("pii", "pci"), New: nhisync.SetOf("pii")},
			set("last_rotated", "2026-01-02T03:04:05Z", "2026-05-06T07:08:09Z")),
		update("gcp/etl-nightly", nhisync.Change{Field: "classification", Old: nhisync.SetOf("internal"), New: nhisync.SetOf("internal", "public")},
			set("lifecycle", "3", "4"), set("owner", "", "true")),
	)
	for i, r := range res {
		if r.Status != nhisync.WriteApplied {
			t.Errorf("write %d: %s %v", i, r.Status, r.Err)
		}
	}
	diff(t, read(t, p), `# Catalog of service accounts. Owned by data-governance.
- name: payments-bot # the card processor
  platform: aws
  steward: "carol@example.com"
  tags: [pii]
  metadata:
    annotations:
      nhi.example/owner: alice@example.com
  rotated: 2026-05-06T07:08:09Z
  description: |
    Moves money.
    Carefully.
# Retired soon.
- name: etl-nightly
  platform: gcp
  tags:
  - internal
  - public
  count: 4
  steward: "true"
`)
}

func TestYAMLNestedPathAndCreate(t *testing.T) {
	fields := []string{"name=name", "platform=platform", `owner=metadata.annotations["nhi.example/owner"]`}
	c, sys, p := fileSystem{name: "c.yml", content: yamlCatalog, fields: fields, prep: func(s *nhisync.System) { s.Provision = true }}.open(t)
	if v := snapshot(t, c).value(sys, "aws/payments-bot", "owner"); v.Text() != "alice@example.com" {
		t.Errorf("annotation read as %q", v)
	}
	res := apply(t, c,
		update("gcp/etl-nightly", set("owner", "", "erin@example.com")),
		nhisync.Write{Create: true, Changes: []nhisync.Change{{Field: "name", New: nhisync.Str("new-bot")}, {Field: "platform", New: nhisync.Str("k8s")}, {Field: "owner", New: nhisync.Str("f@example.com")}}},
	)
	if res[0].Status != nhisync.WriteApplied || res[1].ID != "k8s/new-bot" {
		t.Fatalf("writes: %+v", res)
	}
	out := read(t, p)
	for _, want := range []string{
		"  count: 3\n  metadata:\n    annotations:\n      nhi.example/owner: erin@example.com\n",
		"- name: new-bot\n  platform: k8s\n  metadata:\n    annotations:\n      nhi.example/owner: f@example.com\n",
		"# Catalog of service accounts.", "# Retired soon.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("file lacks %q:\n%s", want, out)
		}
	}
}

func TestYAMLErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, fragment string }{
		{"mapping", "name: x\n", "line 1: expected a list of mappings"},
		{"item", "- name: x\n- just text\n", "line 2: list item is not a mapping"},
		{"documents", "- name: x\n---\n- name: y\n", "line 2: a second YAML document"},
		{"syntax", "- name: [x\n", "yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, _ := fileSystem{name: "e.yaml", content: tc.in, fields: []string{"name=name", "platform=platform"}}.open(t)
			err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
			wantCode(t, err, nhisync.EINVALID, tc.fragment)
		})
	}
}

func TestPathThroughNonObjectFailsTheWrite(t *testing.T) {
	in := "- name: a\n  platform: aws\n  metadata: just text\n"
	fields := []string{"name=name", "platform=platform", `owner=metadata.annotations["nhi.example/owner"]`, "lifecycle=state"}
	c, _, p := fileSystem{name: "c.yaml", content: in, fields: fields}.open(t)
	res := apply(t, c, update("aws/a", set("lifecycle", "", "active"), set("owner", "", "x@example.com")))
	if res[0].Status != nhisync.WriteFailed || !strings.Contains(nhisync.ErrorMessage(res[0].Err), "not a mapping") {
		t.Errorf("write through a scalar: %s %v", res[0].Status, res[0].Err)
	}
	diff(t, read(t, p), in)
}
