package config_test

import (
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/config"
)

// FuzzParse: any file either parses or is refused with EINVALID naming
// what is wrong — never a panic, never another kind of error.
func FuzzParse(f *testing.F) {
	f.Add([]byte(config.Starter()))
	for _, s := range []string{
		"version: 1\nkinds:\n  a:\n    match: [name]\n    fields: {name: {type: string}}\nsystems:\n  s: {connector: file, path: s.csv, kind: a, fields: {name: n}}\n",
		"version: 1\nkinds: {a: &x {match: [n], fields: {n: {type: string}}}, b: *x}\n",
		"version: ${V:-1}\nstore: ${NOPE}\n",
		"version: 1\nkinds: {k: {match: [n], fields: {n: {type: enum, values: [a, a]}}, rules: [{name: r, check: 'n ==' }]}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := config.Parse(data, "fuzz.yaml", func(k string) (string, bool) { return "v", k == "V" })
		if err != nil && nhisync.ErrorCode(err) != nhisync.EINVALID {
			t.Fatalf("Parse: %v (code %s), want EINVALID", err, nhisync.ErrorCode(err))
		}
	})
}
