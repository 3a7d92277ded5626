package httpapi_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/config"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/httpapi"
	"github.com/nhisync/nhisync/sqlite"
)

var (
	benchRecords = flag.Int("api.records", 100_000, "records in the API benchmark's store (SPEC §8 names 1000000)")
	benchCache   = flag.String("api.cache", "", "directory to keep the API benchmark's store in between runs (built once per size)")
)

const benchConfig = `version: 1
kinds:
  service_account:
    match: [platform, name]
    fields:
      name: { type: string }
      platform: { type: string }
      owner: { type: string }
      lifecycle: { type: enum, values: [active, suspended, decommissioned] }
      tier: { type: string }
systems:
  idp: { connector: file, path: idp.csv, kind: service_account, fields: { name: name, platform: platform, lifecycle: status } }
  cmdb: { connector: file, path: cmdb.csv, kind: service_account, fields: { name: name, platform: platform, owner: owner, tier: tier } }
  catalog: { connector: file, path: catalog.csv, kind: service_account, fields: { name: name, platform: platform, owner: steward } }
`

// benchStore builds (or reuses from -api.cache) a store of n records, each
// linked to three systems: tier is "gold" for 1 record in 10 and
// lifecycle "suspended" for 1 in 1000, so filters of both selectivities
// can be timed.
func benchStore(b *testing.B, n int) (nhisync.Store, *nhisync.Config) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	if *benchCache != "" {
		dir = filepath.Join(*benchCache, fmt.Sprintf("records-%d", n))
	}
	path := filepath.Join(dir, "nhisync.db")
	_, statErr := os.Stat(filepath.Join(dir, "complete"))
	cfg, err := config.Parse([]byte(benchConfig), filepath.Join(dir, "nhisync.yaml"), nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if statErr == nil {
		return s, cfg
	}
	start := time.Now()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 5000
	for i := 0; i < n; i += batch {
		m := min(batch, n-i)
		first, err := s.NewIDs(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		var bt nhisync.Batch
		for j := range m {
			k := i + j
			name := fmt.Sprintf("bot-%07d", k)
			tier, life := "bronze", "active"
			if k%10 == 0 {
				tier = "gold"
			}
			if k%1000 == 7 {
				life = "suspended"
			}
			r := &nhisync.Record{ID: first + int64(j), Kind: "service_account",
				Key: nhisync.DisplayKey([]string{"aws", name}), MatchKey: nhisync.NormalizeKey([]string{"aws", name}),
				Created: at, Updated: at,
				Fields: map[string]*nhisync.Golden{
					"name":      {Value: nhisync.Str(name), Source: "idp", Rule: "priority", At: at},
					"platform":  {Value: nhisync.Str("aws"), Source: "idp", Rule: "priority", At: at},
					"owner":     {Value: nhisync.Str(fmt.Sprintf("team-%d@example.com", k%500)), Source: "cmdb", Rule: "priority", At: at},
					"lifecycle": {Value: nhisync.Str(life), Source: "idp", Rule: "priority", At: at},
					"tier":      {Value: nhisync.Str(tier), Source: "cmdb", Rule: "priority", At: at},
				}}
			bt.Records = append(bt.Records, r)
			for _, sys := range []string{"idp", "cmdb", "catalog"} {
				bt.Links = append(bt.Links, &nhisync.Link{System: sys, ExternalID: sys + "-" + name, RecordID: r.ID, Status: nhisync.LinkLive,
					Hash: []byte{1, 2, 3}, FirstSeen: at, SeenAt: at,
					Fields: map[string]*nhisync.FieldState{"name": {Shadow: nhisync.Str(name), Asserted: nhisync.Str(name), Since: at}}})
			}
		}
		if err := s.Commit(ctx, &bt); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("built a store of %d records in %s", n, time.Since(start).Round(time.Second))
	if *benchCache != "" {
		if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return s, cfg
}

// BenchmarkAPIRecords times record look-ups and (filtered) lists through
// the API's handler on a store of -api.records records, reporting the
// 50th and 99th percentile per request (SPEC §8: under 50 ms p99 at a
// million). Run: go test -run '^$' -bench APIRecords ./httpapi/
// -api.records 1000000 -api.cache /some/dir -benchtime 2000x
func BenchmarkAPIRecords(b *testing.B) {
	n := *benchRecords
	s, cfg := benchStore(b, n)
	ctx := context.Background()
	secret, hash, _ := nhisync.NewTokenSecret()
	_ = s.RevokeToken(ctx, "bench")
	if err := s.CreateToken(ctx, &nhisync.Token{Name: "bench", Role: nhisync.RoleViewer, Hash: hash, Created: time.Now()}); err != nil {
		b.Fatal(err)
	}
	srv, err := httpapi.New(httpapi.Options{Config: cfg, Store: s, Engine: engine.New(cfg, s, nil)})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name string
		path func() string
	}{
		{"lookup", func() string {
			return fmt.Sprintf("/api/v1/records/service_account/aws/bot-%07d", rng.IntN(n))
		}},
		{"list100", func() string {
			return fmt.Sprintf("/api/v1/records?limit=100&after=%d", rng.IntN(n))
		}},
		{"where10pct", func() string {
			return fmt.Sprintf("/api/v1/records?limit=50&where=%s&after=%d", url.QueryEscape(`tier == "gold"`), rng.IntN(n))
		}},
		{"where0.1pct", func() string {
			return fmt.Sprintf("/api/v1/records?limit=20&where=%s&after=%d", url.QueryEscape(`lifecycle == "suspended"`), rng.IntN(n))
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				req := httptest.NewRequest("GET", tc.path(), nil)
				req.Header.Set("Authorization", "Bearer "+secret)
				rec := httptest.NewRecorder()
				t0 := time.Now()
				srv.ServeHTTP(rec, req)
				lat = append(lat, time.Since(t0))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", req.URL, rec.Code, rec.Body)
				}
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
