package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

var updateDecisions = flag.Bool("update-decisions", false, "rewrite testdata/decisions.golden from this run")

// decisionsConfig uses every rule the decider applies: authority with
// stale_after, each resolve strategy, a sensitive field, rules, a ref-free
// approval (approve_to), on_refused: report, retirement and creation.
const decisionsConfig = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  sa:
    match: [platform, name]
    create_from: [idp, cmdb]
    retire_from: [idp]
    fields:
      name:           { type: string, required: true }
      platform:       { type: string, required: true }
      owner:          { type: string, authority: [cmdb, catalog], stale_after: 720h }
      secret:         { type: string, sensitive: true }
      classification: { type: set, resolve: merge }
      lifecycle:      { type: enum, values: [active, rotation_due, suspended, decommissioned], resolve: strictest }
      entitlements:   { type: set, resolve: merge, wins: remove, authority: [idp, cmdb] }
      environment:    { type: enum, values: [dev, staging, prod], resolve: manual }
      tier:           { type: int, resolve: latest }
      cost_center:    { type: string, authority: [cmdb] }
      policy_state:   { type: string, authority: [catalog], approve_to: [cmdb] }
    rules:
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')
      - name: cost-center-format
        check: cost_center == "" || cost_center.matches('^CC-[0-9]{4}$')
systems:
  idp:
    connector: file
    path: idp.json
    kind: sa
    id: id
    fields: { name: name, platform: platform, lifecycle: status, entitlements: scopes, secret: secret, tier: tier }
  cmdb:
    connector: file
    path: cmdb.json
    kind: sa
    id: id
    fields: { name: name, platform: platform, owner: owner, lifecycle: status, classification: tags, entitlements: scopes, environment: env, cost_center: cc, policy_state: policy, tier: tier }
  catalog:
    connector: file
    path: catalog.json
    kind: sa
    id: id
    on_refused: report
    fields: { name: name, platform: platform, owner: steward, classification: tags, environment: env, tier: tier, cost_center: cc, policy_state: policy }
`

// decisionsEstate is a seeded estate of n records over decisionsConfig's
// three systems, with owners, sets, enums and numbers that disagree.
type decisionsEstate struct {
	rnd   *rand.Rand
	files map[string][]map[string]any
}

func (d *decisionsEstate) pick(vals ...any) any { return vals[d.rnd.IntN(len(vals))] }

func (d *decisionsEstate) value(key string) any {
	switch key {
	case "status":
		return d.pick("active", "active", "rotation_due", "suspended", "decommissioned", "bogus", nil)
	case "scopes", "tags":
		var out []any
		for _, e := range []string{"a", "b", "c", "d"} {
			if d.rnd.IntN(3) == 0 {
				out = append(out, e)
			}
		}
		return out
	case "owner", "steward":
		return d.pick("team1@x", "team2@x", "team3@x", "not-an-email", nil)
	case "env":
		return d.pick("dev", "staging", "prod", "prod", nil)
	case "cc":
		return d.pick("CC-0001", "CC-0002", "cc-bad", nil)
	case "policy":
		return d.pick("p1", "p2", nil)
	case "tier":
		return d.pick("1", "2", "3", "x", nil)
	case "secret":
		return d.pick("s1", "s2", nil)
	}
	panic(key)
}

var decisionsKeys = map[string][]string{
	"idp.json":     {"status", "scopes", "secret", "tier"},
	"cmdb.json":    {"owner", "status", "tags", "scopes", "env", "cc", "policy", "tier"},
	"catalog.json": {"steward", "tags", "env", "tier", "cc", "policy"},
}

func (d *decisionsEstate) record(file string, i int) map[string]any {
	r := map[string]any{"id": fmt.Sprintf("%s-%d", file[:1], i), "platform": d.pick("aws", "AWS", "gcp"), "name": fmt.Sprintf("svc-%03d", i)}
	if r["platform"] == "AWS" {
		r["platform"] = "aws"
	}
	for _, k := range decisionsKeys[file] {
		if v := d.value(k); v != nil {
			r[k] = v
		}
	}
	return r
}

// edit changes a share of the estate's records and adds and removes some.
func (d *decisionsEstate) edit(w *world, share float64, next *int) {
	for _, file := range []string{"idp.json", "cmdb.json", "catalog.json"} {
		keys := decisionsKeys[file]
		recs := w.get(file)
		var kept []map[string]any
		for _, r := range recs {
			switch x := d.rnd.Float64(); {
			case x < 0.03 && file == "idp.json":
				continue // vanishes: retires the record
			case x < share:
				k := keys[d.rnd.IntN(len(keys))]
				if v := d.value(k); v != nil {
					r[k] = v
				} else {
					delete(r, k)
				}
			}
			kept = append(kept, r)
		}
		d.files[file] = kept
	}
	for range 3 {
		i := *next
		*next++
		for _, file := range []string{"idp.json", "cmdb.json", "catalog.json"} {
			if d.rnd.IntN(3) > 0 {
				d.files[file] = append(d.files[file], d.record(file, i))
			}
		}
	}
	for file, recs := range d.files {
		w.put(file, recs)
	}
}

// TestDecisionsPinned pins what passes decide, byte for byte: every audit
// leaf (but its prev_hash, and config.loaded's fingerprint, which hashes
// the workspace's path) and every golden record with its links and open
// work, after a first pass and passes with edits, vanishings, new
// records and a stale owner. Changes meant to make deciding cheaper must
// leave it as it is; a change of the rules rewrites it with
// -update-decisions.
func TestDecisionsPinned(t *testing.T) {
	const n = 40
	d := &decisionsEstate{rnd: rand.New(rand.NewPCG(1, 2)), files: map[string][]map[string]any{}}
	for i := range n {
		for _, file := range []string{"idp.json", "cmdb.json", "catalog.json"} {
			if file == "idp.json" || d.rnd.IntN(5) > 0 {
				d.files[file] = append(d.files[file], d.record(file, i))
			}
		}
	}
	w := newWorld(t, decisionsConfig, d.files)
	w.opts = append(w.opts, engine.WithAuditSecret([]byte("0123456789abcdef0123456789abcdef")))
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name == "cmdb" {
			return sourceTimes{c}
		}
		return c
	}
	w.sync()
	next := n
	for pass := range 4 {
		d.edit(w, 0.3, &next)
		if pass == 2 {
			w.clock.Advance(40 * 24 * time.Hour) // owners set by a system not seen since go stale
		}
		w.sync()
	}
	w.sync()

	got := dumpDecisions(t, w)
	path := filepath.Join("testdata", "decisions.golden")
	if *updateDecisions {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-decisions to write it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range max(len(gl), len(wl)) {
			var g, w []byte
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("decisions differ from %s at line %d:\n got %s\nwant %s", path, i+1, g, w)
			}
		}
	}
}

// sourceTimes is a system that tells, for most of its records, who
// changed them and when (as LDAP and git do): the time is derived from
// the record's id, its tier and its owner, the actor from its id.
type sourceTimes struct{ nhisync.Connector }

func (s sourceTimes) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	return s.Connector.Snapshot(ctx, func(o nhisync.Observation) error {
		h := len(o.ID)
		for _, v := range o.Values {
			h = h*31 + len(v.String())
		}
		if h%4 != 0 {
			o.Modified = t0.Add(time.Duration(h%1000) * time.Minute)
		}
		if h%3 == 0 {
			o.Actor = fmt.Sprintf("user%d", h%5)
		}
		return emit(o)
	})
}

// dumpDecisions lists the store's audit leaves and records, one a line.
func dumpDecisions(t *testing.T, w *world) []byte {
	ctx := context.Background()
	var out bytes.Buffer
	err := w.store.ScanAudit(ctx, 1, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		if e.Action == nhisync.ActConfigLoaded {
			fmt.Fprintf(&out, "%d %s\n", e.Seq, e.Action)
			return nil
		}
		i := bytes.LastIndex(leaf, []byte(`,"prev_hash":`))
		if i < 0 {
			t.Fatalf("leaf %d has no prev_hash: %s", e.Seq, leaf)
		}
		out.Write(leaf[:i])
		out.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.store.ScanRecords(ctx, "", jsonLine[*nhisync.Record](&out)); err != nil {
		t.Fatal(err)
	}
	for _, s := range w.cfg.SystemNames {
		if err := w.store.ScanLinks(ctx, s, []nhisync.LinkStatus{nhisync.LinkUnmatched, nhisync.LinkDisputed}, jsonLine[*nhisync.Link](&out)); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// jsonLine returns a scan callback writing each value to out as a line of
// JSON.
func jsonLine[T any](out *bytes.Buffer) func(T) error {
	return func(v T) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		out.Write(b)
		out.WriteByte('\n')
		return nil
	}
}
