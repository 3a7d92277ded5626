// Package conntest owns the conformance suite every connector passes
// against its real system (files, SQLite, PostgreSQL, MariaDB, OpenLDAP, a
// SCIM server, …): snapshots aligned with the mapping, empty values, sets,
// conditional writes (applied, stale, idempotent retry, missing), unmapped
// data and row order kept, provisioning, change cursors, health checks and
// volume. A connector's test supplies a Harness that makes and edits its
// system directly, outside nhisync, and calls Run.
package conntest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// Native names of the standard system every test opens. The suite maps
// canonical fields to these names; Setup must create a system holding
// them (IDName only when System.ID is set). They are lower-case letters
// only, so every system can spell them: LDAP attribute names allow no
// underscore, PostgreSQL folds unquoted names to lower case, and `name`
// would clash with LDAP's own attribute.
const (
	IDName       = "sysid"
	NameName     = "botname"
	PlatformName = "platform"
	OwnerName    = "ownedby"
	TagsName     = "tags"
	StatusName   = "status"
	RotatedName  = "rotatedat"
	// Unmapped names: data nhisync must keep untouched.
	NotesName      = "notes"
	CostCenterName = "costcenter"
)

// Columns lists every native name the suite's records use, id first, in
// the order a flat format should lay them out.
var Columns = []string{IDName, NameName, PlatformName, OwnerName, TagsName, StatusName, RotatedName, NotesName, CostCenterName}

// Features says what a connector's system can do beyond the contract every
// connector meets; the suite runs the matching tests only.
type Features struct {
	// Ordered: a snapshot emits records in stored order, and writes keep
	// that order (files).
	Ordered bool
	// CompositeID: the system works without an id field, the id being the
	// mapped match fields' native values joined by "/".
	CompositeID bool
}

// Harness makes and changes one kind of system directly, as a person or
// another program would, so the suite can check what the connector sees
// and leaves behind.
//
// Records are maps from native name to value: a string, a []string for
// set fields (the tags name), or nil; a missing name means "no value".
// Formats without arrays store a []string joined by its mapping's
// separator (Flatten does it).
type Harness interface {
	// Features reports what the system supports.
	Features() Features
	// Setup creates a fresh system holding records, in order, and fills in
	// what the connector needs to reach it: sys.Settings and sys.BaseDir.
	// The suite has set every other member of sys.
	Setup(t *testing.T, sys *nhisync.System, records []map[string]any)
	// Edit changes the record with external id in the system (a
	// concurrent change outside nhisync): each name in native is set to
	// its value, nil clearing it. A change cursor must see the edit as
	// newer than every earlier change, and earlier changes must not share
	// one timestamp (so a Changer re-reads at most one boundary record).
	Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any)
	// Remove deletes the record with external id from the system.
	Remove(t *testing.T, sys *nhisync.System, id string)
	// Raw returns the record as the system stores it now, by native name
	// (nil when the record is gone). Empty values may be absent, nil or "".
	Raw(t *testing.T, sys *nhisync.System, id string) map[string]any
}

// Kind returns the standard kind the suite's systems hold: a
// service_account matched by platform and name.
func Kind() *nhisync.Kind {
	fields := []*nhisync.Field{
		{Name: "name", Type: nhisync.TypeString, Required: true},
		{Name: "platform", Type: nhisync.TypeString, Required: true},
		{Name: "owner", Type: nhisync.TypeString},
		{Name: "classification", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge},
		{Name: "lifecycle", Type: nhisync.TypeEnum, Values: []string{"active", "rotation_due", "suspended", "decommissioned"}, Resolve: nhisync.ResolveStrictest},
		{Name: "last_rotated", Type: nhisync.TypeTime},
	}
	k := &nhisync.Kind{Name: "service_account", Match: []string{"platform", "name"}, Fields: map[string]*nhisync.Field{}}
	for _, f := range fields {
		if f.Resolve == "" {
			f.Resolve = nhisync.ResolvePriority
		}
		k.Fields[f.Name] = f
		k.FieldNames = append(k.FieldNames, f.Name)
	}
	return k
}

// System returns the standard system of the suite for driver: every field
// of Kind mapped to the native names above, id IDName, both directions.
func System(name, driver string) *nhisync.System {
	k := Kind()
	natives := map[string]string{
		"name": NameName, "platform": PlatformName, "owner": OwnerName,
		"classification": TagsName, "lifecycle": StatusName, "last_rotated": RotatedName,
	}
	sys := &nhisync.System{
		Name: name, Connector: driver, Kind: k.Name, ID: IDName,
		Direction: nhisync.DirBoth, Poll: 30 * time.Second, OnRefused: nhisync.Repair,
		Settings: nhisync.Settings{}, Pos: "conntest:1",
	}
	for _, f := range k.FieldNames {
		sys.Fields = append(sys.Fields, &nhisync.Mapping{
			Field: f, Type: k.Fields[f].Type, Name: natives[f], Direction: nhisync.DirBoth,
		})
	}
	return sys
}

// Flatten returns rec with every []string joined by the separator of the
// mapping of its native name in sys (","), for formats without arrays.
func Flatten(sys *nhisync.System, rec map[string]any) map[string]any {
	out := make(map[string]any, len(rec))
	for k, v := range rec {
		if elems, ok := v.([]string); ok {
			sep := ","
			for _, m := range sys.Fields {
				if m.Name == k {
					sep = m.Separator()
				}
			}
			v = strings.Join(elems, sep)
		}
		out[k] = v
	}
	return out
}

// IDOf returns the external id the connector reports for rec: its
// sys.ID value, or with no id field the match fields' native values
// (platform, name) trimmed and joined by "/".
func IDOf(sys *nhisync.System, rec map[string]any) string {
	if sys.ID != "" {
		s, _ := rec[sys.ID].(string)
		return strings.TrimSpace(s)
	}
	var parts []string
	for _, f := range Kind().Match {
		if m := sys.Mapping(f); m != nil {
			s, _ := rec[m.Name].(string)
			parts = append(parts, strings.TrimSpace(s))
		}
	}
	return strings.Join(parts, "/")
}

// Text returns a native value as text for comparisons: a string as is,
// nil or missing as "", others formatted the way native.Text does.
func Text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case []string:
		return strings.Join(v, ",")
	}
	return fmt.Sprint(v)
}
