package sql

import (
	"encoding/json"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestStringArrayAgreesWithJSON: the fast path reads what encoding/json
// reads, or declines.
func TestStringArrayAgreesWithJSON(t *testing.T) {
	for _, s := range []string{`[]`, `["a"]`, `[ "a" , "b c" ]`, `["a",]`, `["a" "b"]`, `[1]`, `["a\"b"]`, `{"a":1}`, `["é", "✓"]`, `[null]`, `[`} {
		check(t, s)
	}
	rapid.Check(t, func(rt *rapid.T) {
		elems := rapid.SliceOf(rapid.String()).Draw(rt, "elems")
		b, _ := json.Marshal(elems)
		check(rt, string(b))
	})
}

func check(t interface{ Errorf(string, ...any) }, s string) {
	got, ok := stringArray(s)
	var want []string
	err := json.Unmarshal([]byte(s), &want)
	if ok && (err != nil || !slices.Equal(got, want)) {
		t.Errorf("stringArray(%q) = %q, json reads %q (%v)", s, got, want, err)
	}
}
