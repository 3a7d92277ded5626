package engine

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/config"
	_ "github.com/nhisync/nhisync/connector/file"
	"github.com/nhisync/nhisync/sqlite"
	"github.com/nhisync/nhisync/storetest"
)

// readEstateConfig is cmd/nhisync-bench's estate with the idp as a CSV
// file: three systems of 22-26 columns, ten mapped fields, the catalog
// without an id column (its ids are its match values).
const readEstateConfig = `version: 1
store: sqlite:./data/nhisync.db
kinds:
  service_account:
    match: [platform, name]
    create_from: [idp, cmdb]
    retire_from: [idp]
    fields:
      name:           { type: string, required: true }
      platform:       { type: string, required: true }
      owner:          { type: string, authority: [cmdb, catalog] }
      classification: { type: set, resolve: merge }
      lifecycle:      { type: enum, values: [active, rotation_due, suspended, decommissioned], resolve: strictest }
      entitlements:   { type: set, resolve: merge, wins: remove, authority: [idp] }
      last_rotated:   { type: time, authority: [idp] }
      environment:    { type: enum, values: [dev, staging, prod], resolve: manual }
      cost_center:    { type: string, authority: [cmdb] }
      tier:           { type: int, authority: [catalog] }
systems:
  idp:
    connector: file
    kind: service_account
    path: ./idp.csv
    id: id
    fields: { name: name, platform: platform, lifecycle: status, entitlements: roles, last_rotated: last_rotated }
  cmdb:
    connector: file
    kind: service_account
    path: ./cmdb.csv
    id: sys_id
    fields:
      name: name
      platform: platform
      owner: owned_by
      lifecycle: status
      classification: tags
      entitlements: entitlements
      last_rotated: last_rotated
      environment: environment
      cost_center: cost_center
      tier: u_tier
  catalog:
    connector: file
    kind: service_account
    path: ./catalog.csv
    fields: { name: name, platform: platform, owner: steward, classification: labels, environment: environment, tier: tier, cost_center: cost_center }
`

// writeReadEstate writes n NHIs: every one in the idp, 80% in the CMDB,
// 70% in the catalog, 1% of catalog rows matching nothing.
func writeReadEstate(b *testing.B, dir string, n int) {
	r := rand.New(rand.NewPCG(1, 2))
	guid := func() string {
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
	}
	text := func(k int) string {
		var s strings.Builder
		for range k {
			s.WriteByte(byte('a' + r.IntN(26)))
		}
		return s.String()
	}
	stamp := func() string {
		return fmt.Sprintf("2026-%02d-%02dT%02d:%02d:%02dZ", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	}
	open := func(name, header string) (*os.File, *bufio.Writer) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		w.WriteString(header + "\n")
		return f, w
	}
	idpF, idp := open("idp.csv", "id,name,platform,display,description,status,roles,last_rotated,created,updated,contact,client_id,tenant,alg,fingerprint,expires,issued,uses,ip,region,ttl,scopes,issuer,audience,disabled")
	cmdbF, cmdb := open("cmdb.csv", "sys_id,name,platform,owned_by,status,tags,entitlements,last_rotated,environment,cost_center,u_tier,class,short,notes,unit,app,ci,group,region,vendor,cost,install,op,created,updated,contact")
	catF, cat := open("catalog.csv", "name,platform,steward,labels,environment,tier,cost_center,description,unit,score,public,retention,reviewed,contact,url,size,version,created,updated,source,notes,status_url")
	platforms := []string{"aws", "gcp", "azure", "k8s", "github"}
	statuses := []string{"active", "rotation_due", "suspended"}
	for i := range n {
		name := fmt.Sprintf("svc-%016x", uint64(i+1)*0x9e3779b97f4a7c15)
		platform := platforms[i%len(platforms)]
		status := statuses[r.IntN(len(statuses))]
		owner := fmt.Sprintf("team%d@example.com", r.IntN(2000))
		roles := fmt.Sprintf("\"role-%d,role-%d\"", r.IntN(20), 20+r.IntN(20))
		rotated := stamp()
		env := []string{"dev", "staging", "prod"}[r.IntN(3)]
		cc := fmt.Sprintf("CC-%d", 1000+r.IntN(9000))
		tier := fmt.Sprint(1 + r.IntN(4))
		fmt.Fprintf(idp, "%s,%s,%s,%s (%s),%s,%s,%s,%s,%s,%s,%s,%s,%s,ed25519,SHA256:%016x%016x,%s,%s,%d,10.%d.%d.%d,eu-west-1,900,read write,https://idp.example.com/%s,api://%s,0\n",
			guid(), name, platform, name, platform, text(10), status, roles, rotated, stamp(), stamp(), owner, guid(), guid(), r.Uint64(), r.Uint64(), stamp(), stamp(), r.IntN(100000), r.IntN(256), r.IntN(256), r.IntN(256), platform, platform)
		if r.IntN(10) < 8 {
			fmt.Fprintf(cmdb, "%s,%s,%s,%s,%s,\"pii,internal\",%s,%s,%s,%s,%s,cmdb_ci_service_account,%s,%s,Platform,app-%d,%s,Platform Ops,eu-west-1,%s,\"1,234.50\",Installed,Operational,%s,%s,%s\n",
				guid(), name, platform, owner, status, roles, rotated, env, cc, tier, text(6), text(12), r.IntN(3000), guid(), platform, stamp(), stamp(), owner)
		}
		if r.IntN(10) < 7 {
			fmt.Fprintf(cat, "%s,%s,%s,\"pii,internal\",%s,%s,%s,%s,Platform,%d,false,365,%s,%s,https://catalog.example.com/entities/%s,16,v2,%s,%s,backstage,%s,https://status.example.com/%s\n",
				name, platform, owner, env, tier, cc, text(16), r.IntN(40), stamp(), owner, name, stamp(), stamp(), text(8), platform)
		}
		if r.IntN(100) == 0 {
			fmt.Fprintf(cat, "orphan-%016x,%s,%s,internal,dev,1,,,,,,,,,,,,,,,,\n", uint64(i+1)*0xbf58476d1ce4e5b9, platform, owner)
		}
	}
	for _, w := range []*bufio.Writer{idp, cmdb, cat} {
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	for _, f := range []*os.File{idpF, cmdbF, catF} {
		f.Close()
	}
}

// BenchmarkReadCorrelate100k is a first pass's read and correlate phases
// over 100,000 NHIs in three CSV systems, into an empty store: every
// record read, canonicalised, hashed, staged and tied to a new or
// matching golden record, which is what a first pass holds until it
// decides. It reports the process's CPU seconds per pass and the live
// heap per NHI once correlation is done.
func BenchmarkReadCorrelate100k(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	writeReadEstate(b, dir, n)
	cfgPath := filepath.Join(dir, "nhisync.yaml")
	if err := os.WriteFile(cfgPath, []byte(readEstateConfig), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store, err := sqlite.OpenURL(ctx, cfg.Store)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	conns := map[string]nhisync.Connector{}
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		d, _ := nhisync.LookupDriver(sys.Connector)
		c, err := d.Open(ctx, sys, cfg.Kinds[sys.Kind])
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[name] = c
	}
	e := New(cfg, store, conns)
	var cpu, live float64
	b.ReportAllocs()
	for b.Loop() {
		start := storetest.ProcessCPU()
		p := e.newPass(PassOptions{}, e.clock.Now())
		// No lease is taken: one held for an hour needs no renewal.
		p.leaseTTL, p.leaseAt = time.Hour, e.clock.Now()
		if err := p.loadState(ctx); err != nil {
			b.Fatal(err)
		}
		if err := p.observe(ctx); err != nil {
			b.Fatal(err)
		}
		if err := p.correlate(ctx); err != nil {
			b.Fatal(err)
		}
		cpu += (storetest.ProcessCPU() - start).Seconds()
		for name, ss := range p.sum.Systems {
			if ss.Error != "" {
				b.Fatalf("%s: %s", name, ss.Error)
			}
		}
		if len(p.work) < n {
			b.Fatalf("%d records to decide, want at least %d", len(p.work), n)
		}
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		live += float64(ms.HeapAlloc) / n
		runtime.KeepAlive(p)
		p = nil
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
	b.ReportMetric(live/float64(b.N), "live-B/NHI")
}
