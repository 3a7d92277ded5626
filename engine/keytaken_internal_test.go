package engine

import (
	"context"
	"testing"

	"github.com/nhisync/nhisync"
)

// countedKeys is an in-memory key index that counts its look-ups.
type countedKeys struct {
	memKeys
	lookups int
}

func (c *countedKeys) owner(ctx context.Context, kind, key string) (int64, bool, error) {
	c.lookups++
	return c.memKeys.owner(ctx, kind, key)
}

// keyTaken looks up no key its record holds itself (the look-up a first
// pass made for every system's proposal of a new record's own key), and
// still finds a key another record holds, or none.
func TestKeyTakenOwnKeyLooksNothingUp(t *testing.T) {
	ctx := context.Background()
	kind := &nhisync.Kind{Name: "service_account", Match: []string{"platform", "name"}}
	platform, name := &nhisync.Field{Name: "platform"}, &nhisync.Field{Name: "name"}
	rec := &nhisync.Record{ID: 1, Kind: kind.Name, MatchKey: nhisync.NormalizeKey([]string{"aws", "svc-a"}), Fields: map[string]*nhisync.Golden{
		"platform": {Value: nhisync.Str("aws")}, "name": {Value: nhisync.Str("svc-a")},
	}}
	keys := &countedKeys{memKeys: memKeys{kind.Name: {
		rec.MatchKey: 1,
		nhisync.NormalizeKey([]string{"aws", "svc-b"}): 2,
	}}}
	tests := []struct {
		field   *nhisync.Field
		value   string
		taken   bool
		lookups int
	}{
		{name, "svc-a", false, 0},   // its own key
		{name, " SVC-A ", false, 0}, // its own key, normalized
		{platform, "aws", false, 0},
		{name, "svc-b", true, 1},  // record 2's
		{name, "svc-c", false, 1}, // nobody's
		{platform, "gcp", false, 1},
	}
	for _, tc := range tests {
		keys.lookups = 0
		taken, err := keyTaken(ctx, keys, kind, rec, tc.field, nhisync.Str(tc.value))
		if err != nil || taken != tc.taken || keys.lookups != tc.lookups {
			t.Errorf("keyTaken(%s = %q) = %v, %v after %d look-ups; want %v after %d", tc.field.Name, tc.value, taken, err, keys.lookups, tc.taken, tc.lookups)
		}
	}
}
