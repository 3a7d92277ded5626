package file_test

import (
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
)

func TestValidate(t *testing.T) {
	d, ok := nhisync.LookupDriver("file")
	if !ok {
		t.Fatal("file connector not registered")
	}
	for _, tc := range []struct {
		name     string
		settings nhisync.Settings
		id       string
		fields   map[string]string
		fragment string // "" when valid
	}{
		{"valid csv", nhisync.Settings{"path": "a.csv"}, "sys_id", nil, ""},
		{"valid yml", nhisync.Settings{"path": "a.YML"}, "", nil, ""},
		{"format overrides extension", nhisync.Settings{"path": "a.txt", "format": "jsonl"}, "id", nil, ""},
		{"no path", nhisync.Settings{}, "id", nil, "set path"},
		{"unknown extension", nhisync.Settings{"path": "a.txt"}, "id", nil, "set format: csv, json, jsonl or yaml"},
		{"unknown format", nhisync.Settings{"path": "a.csv", "format": "xml"}, "id", nil, `unknown format "xml"`},
		{"bad path", nhisync.Settings{"path": "a.json"}, "id", map[string]string{"owner": `meta["x`}, "field owner: native path"},
		{"bad id path", nhisync.Settings{"path": "a.yaml"}, "meta..id", nil, "id: native path"},
		{"csv names are columns", nhisync.Settings{"path": "a.csv"}, "meta..id", map[string]string{"owner": `meta["x`}, ""},
		{"no id and no match field", nhisync.Settings{"path": "a.csv"}, "", map[string]string{"name": "", "platform": ""}, "set id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := conntest.System("cat", "file")
			sys.Settings, sys.ID, sys.BaseDir = tc.settings, tc.id, t.TempDir()
			for f, n := range tc.fields {
				if n == "" {
					var keep []*nhisync.Mapping
					for _, m := range sys.Fields {
						if m.Field != f {
							keep = append(keep, m)
						}
					}
					sys.Fields = keep
					continue
				}
				sys.Mapping(f).Name = n
			}
			err := d.Validate(sys, conntest.Kind())
			if tc.fragment == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			wantCode(t, err, nhisync.EINVALID, tc.fragment)
			wantCode(t, err, nhisync.EINVALID, "system cat: ")
		})
	}
}

func TestCheckReadOnlySystemNeedsNoWritableDirectory(t *testing.T) {
	c, _, _ := fileSystem{name: "ok.csv", content: csvAccounts, id: "sys_id", fields: csvFields,
		prep: func(s *nhisync.System) { s.Direction = nhisync.DirRead }}.open(t)
	if err := c.Check(t.Context()); err != nil {
		t.Errorf("Check: %v", err)
	}
	res := apply(t, c, update("a1", set("owner", "alice@example.com", "x@example.com")))
	if res[0].Status != nhisync.WriteFailed {
		t.Errorf("write to a read-only system: %s", res[0].Status)
	}
}
