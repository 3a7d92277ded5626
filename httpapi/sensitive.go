package httpapi

import (
	"encoding/json"

	"github.com/nhisync/nhisync"
)

// valueKeys are the JSON keys that hold a field's values in the engine's
// and the store's shapes (explanations, queue items, proposals, history).
var valueKeys = map[string]bool{"value": true, "shadow": true, "old": true, "new": true, "resolution": true, "golden": true, "asserted": true}

// sensitive reports whether kind's field is `sensitive: true`: its values
// stay out of what the API and the console show, as out of the logs.
// The rule is the engine's, which the CLI's listings use too; the API
// withholds such values (null, "sensitive": true) instead of printing
// nhisync.Redacted.
func (s *Server) sensitive(kind, field string) bool {
	return s.opt.Engine.Sensitive(kind, field)
}

// withheld returns v as generic JSON with every value key set to null and
// "sensitive": true added, for an item about a sensitive field.
func withheld(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	scrub(m)
	if obj, ok := m.(map[string]any); ok {
		obj["sensitive"] = true
	}
	return m, nil
}

func scrub(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if valueKeys[k] {
				x[k] = nil
				continue
			}
			scrub(e)
		}
	case []any:
		for _, e := range x {
			scrub(e)
		}
	}
}

// maskItems replaces the items about sensitive fields with withheld
// copies.
func maskItems[T any](s *Server, items []T, about func(T) (kind, field string)) ([]any, error) {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it
		if k, f := about(it); s.sensitive(k, f) {
			w, err := withheld(it)
			if err != nil {
				return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Message: "masking a sensitive item failed", Err: err}
			}
			out[i] = w
		}
	}
	return out, nil
}
