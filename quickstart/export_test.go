package quickstart

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestYAMLScalar: every string the catalog writer emits reads back as the
// same string through a YAML parser, plain where it looks plain.
func TestYAMLScalar(t *testing.T) {
	tests := []struct {
		in    string
		plain bool
	}{
		{"payments-bot", true},
		{"maria.garcia@example.com", true},
		{"Service account used by payments (prod)", true},
		{"", false},
		{" payments-bot", false},
		{"Payments-Bot ", false},
		{"true", false}, {"No", false}, {"on", false}, {"y", false}, {"null", false}, {"~", false},
		{"123", false}, {"1e3", false}, {"2026-01-02", false}, {".inf", false},
		{"a: b", false}, {"x #y", false}, {"#x", false}, {"- x", false}, {"[x]", false}, {"{x}", false},
		{"*alias", false}, {"&anchor", false}, {"!tag", false}, {"%x", false}, {"@x", false}, {"`x", false},
		{`say "hi"`, false}, {"it's", false}, {"a\nb", false}, {"tab\there", false}, {"café", false}, {"<b>&</b>", false},
		{"bob at example", true}, {"j.smith(at)example.com", true},
	}
	for _, tt := range tests {
		out := appendYAMLScalar(nil, tt.in)
		if plain := string(out) == tt.in; plain != tt.plain {
			t.Errorf("%q written as %s: plain %v, want %v", tt.in, out, plain, tt.plain)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(append([]byte("k: "), out...), &doc); err != nil {
			t.Errorf("%q written as %s: %v", tt.in, out, err)
			continue
		}
		if got, ok := doc["k"].(string); !ok || got != tt.in {
			t.Errorf("%q written as %s reads back as %#v", tt.in, out, doc["k"])
		}
	}
}
