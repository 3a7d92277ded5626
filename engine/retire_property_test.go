package engine_test

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/nhisync/nhisync"
)

// guardedEstate is the config of TestPropertyBadReadsAreGuarded: the idp
// is the retire_from system; every system has the guard under test.
const guardedEstate = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  service_account:
    match: [platform, name]
    create_from: [idp, cmdb]
    retire_from: [idp]
    fields:
      name:      { type: string, required: true }
      platform:  { type: string, required: true }
      owner:     { type: string, authority: [cmdb, catalog] }
      lifecycle: { type: enum, values: [active, rotation_due, suspended, decommissioned], resolve: strictest }
systems:
  idp:     { connector: file, path: idp.json, kind: service_account, id: id, fields: { name: name, platform: platform, lifecycle: status }%[1]s }
  cmdb:    { connector: file, path: cmdb.json, kind: service_account, id: id, fields: { name: name, platform: platform, owner: owner, lifecycle: status }%[1]s }
  catalog: { connector: file, path: catalog.json, kind: service_account, id: id, fields: { name: name, platform: platform, owner: steward }%[1]s }
`

// TestPropertyBadReadsAreGuarded (SPEC §3.11, issue 5): a read of any
// system that comes back empty or truncated never changes more golden
// values than the guard allows — from a retire_from system, more
// vanished records than the limit retire nothing and write nothing —
// and restoring the system then returns to the state before with zero
// writes.
func TestPropertyBadReadsAreGuarded(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "nhisync-guard-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)

		guard := rapid.SampledFrom([]string{"", ", guard: 4", `, guard: "30%"`}).Draw(rt, "guard")
		n := rapid.IntRange(1, 40).Draw(rt, "records")
		files := map[string][]map[string]any{}
		for i := range n {
			id := fmt.Sprint(i)
			status := rapid.SampledFrom([]string{"active", "rotation_due", "suspended", "decommissioned"}).Draw(rt, "status")
			owner := rapid.SampledFrom([]string{"", "a@x", "b@x"}).Draw(rt, "owner")
			files["idp.json"] = append(files["idp.json"], sa(id, "aws", "bot"+id, "status", status))
			files["cmdb.json"] = append(files["cmdb.json"], sa(id, "aws", "bot"+id, "status", status, "owner", owner))
			files["catalog.json"] = append(files["catalog.json"], sa(id, "aws", "bot"+id))
		}
		w := newWorldIn(rt, dir, fmt.Sprintf(guardedEstate, guard), files)
		w.sync()
		if sum := w.sync(); sum.WritesPlanned != 0 {
			rt.Fatalf("the estate did not settle before the bad read\n%s", actions(sum))
		}
		before := w.goldenState()
		original := map[string][]map[string]any{}
		for name := range files {
			original[name] = w.get(name)
		}

		// One system's read comes back empty, cut short, or with holes.
		system := rapid.SampledFrom([]string{"idp", "cmdb", "catalog"}).Draw(rt, "system")
		file := system + ".json"
		recs := original[file]
		kept := []map[string]any{}
		switch rapid.SampledFrom([]string{"empty", "truncated", "holes"}).Draw(rt, "read") {
		case "truncated":
			kept = recs[:rapid.IntRange(0, len(recs)).Draw(rt, "keep")]
		case "holes":
			for i, r := range recs {
				if rapid.Bool().Draw(rt, fmt.Sprint("keep-", i)) {
					kept = append(kept, r)
				}
			}
		}
		w.put(file, kept)
		// Records the vanishing would retire: gone from the idp and not
		// decommissioned already.
		retiring := 0
		for _, r := range recs {
			if !slices.ContainsFunc(kept, func(k map[string]any) bool { return k["id"] == r["id"] }) && r["status"] != "decommissioned" {
				retiring++
			}
		}
		limit := w.cfg.Systems[system].Guard.Limit(n)
		sum := w.sync()
		after := w.goldenState()
		changed := 0
		for key, fields := range before {
			if d := cmp.Diff(fields, after[key]); d != "" {
				changed++
				if system != "idp" {
					rt.Fatalf("a bad read of %s changed golden record %s:\n%s", system, key, d)
				}
				delete(fields, nhisync.FieldLifecycle)
				delete(after[key], nhisync.FieldLifecycle)
				if d := cmp.Diff(fields, after[key]); d != "" {
					rt.Fatalf("vanishing from the idp changed more than the lifecycle of %s:\n%s", key, d)
				}
			}
		}
		guarded := system != "idp" || retiring > limit
		switch {
		case system == "idp" && retiring > limit:
			if changed != 0 || sum.WritesPlanned != 0 || sum.ApprovalsRequested != 1 {
				rt.Fatalf("%d of %d records vanished from the idp (limit %d): %d golden records changed, %d writes, %d requests\n%s",
					retiring, n, limit, changed, sum.WritesPlanned, sum.ApprovalsRequested, actions(sum))
			}
		case system == "idp":
			if changed != retiring {
				rt.Fatalf("%d records vanished from the idp within the limit %d, %d golden records changed\n%s", retiring, limit, changed, actions(sum))
			}
		default:
			if sum.WritesPlanned != 0 {
				rt.Fatalf("a bad read of %s planned %d writes\n%s", system, sum.WritesPlanned, actions(sum))
			}
		}

		// The system is restored: back to the state before, zero writes.
		w.put(file, recs)
		sum = w.sync()
		if !guarded {
			return // records retired within the limit stay retired
		}
		if sum.WritesPlanned != 0 || sum.Retired != 0 {
			rt.Fatalf("restoring %s planned %d writes, retired %d\n%s", system, sum.WritesPlanned, sum.Retired, actions(sum))
		}
		if d := cmp.Diff(before, w.goldenState()); d != "" {
			rt.Fatalf("golden after %s was restored (-before +after):\n%s", system, d)
		}
		if p := w.vanishGuards(nhisync.StatusPending); len(p) != 0 {
			rt.Fatalf("guard requests still pending after every record reappeared: %+v", p)
		}
		for name, want := range original {
			if d := cmp.Diff(want, w.get(name)); d != "" {
				rt.Fatalf("%s changed over the bad read and its restore:\n%s", name, d)
			}
		}
	})
}
