package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// TestSmallBatchesCommitWhatOneBatchDoes: a first pass decides each batch's
// records into slabs that the batch after next reuses (batchArena). In
// batches of three, every record, link, field state and audit entry the
// store holds is what one batch of all of them (no slab reused) leaves,
// and the next pass over edited systems too; under -race, bulkCheck's
// reading of each batch inside its commit would meet any reuse of it
// before the commit returned.
func TestSmallBatchesCommitWhatOneBatchDoes(t *testing.T) {
	files := variedEstate(40)
	small := newWorld(t, baseConfig, files)
	small.opts = []engine.Option{engine.WithBatchSize(3)}
	one := newWorld(t, baseConfig, files)
	for _, w := range []*world{small, one} {
		w.sync()
		w.edit("cmdb.json", "7", map[string]any{"owner": "z7@x", "tags": []any{"pci"}})
		w.edit("catalog.json", "12", map[string]any{"steward": "y12@x"})
		w.remove("idp.json", "20")
		w.clock.Advance(time.Hour)
		w.sync()
	}
	for i := range 40 {
		key := []string{"aws", fmt.Sprint("bot", i)}
		got, want := small.describe(small.record("service_account", key...)), one.describe(one.record("service_account", key...))
		if got != want {
			t.Fatalf("bot%d in batches of three:\n%s\nin one batch:\n%s", i, got, want)
		}
	}
}

// variedEstate is estate with values that differ per record, so that a
// field state or golden value left over from another record shows.
func variedEstate(n int) map[string][]map[string]any {
	var idp, cmdb, cat []map[string]any
	for i := range n {
		id := fmt.Sprint(i)
		idp = append(idp, sa(id, "aws", "bot"+id, "status", []string{"active", "suspended"}[i%2], "scopes", []any{"s" + id}))
		if i%5 != 3 {
			cmdb = append(cmdb, sa(id, "aws", "bot"+id, "status", "active", "owner", "o"+id+"@x", "tags", []any{"t" + id}))
		}
		if i%4 != 1 {
			cat = append(cat, sa(id, "aws", "bot"+id, "steward", "s"+id+"@x", "tags", []any{"c" + id}, "policy", "p"+id))
		}
	}
	return map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": cat}
}

// describe prints rec as the store holds it, its links' field states and
// its audit entries, but for ids, sequence numbers and hashes.
func (w *world) describe(rec *nhisync.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s created %v updated %v\n", rec.Kind, rec.Key, rec.Created, rec.Updated)
	for _, f := range keys(rec.Fields) {
		fmt.Fprintf(&b, "  %s = %+v\n", f, *rec.Fields[f])
	}
	links := slices.Clone(rec.Links)
	slices.SortFunc(links, func(a, b *nhisync.Link) int {
		return strings.Compare(a.System+"/"+a.ExternalID, b.System+"/"+b.ExternalID)
	})
	for _, l := range links {
		fmt.Fprintf(&b, "  link %s/%s %s seen %v first %v gone %v modified %v hash %x\n", l.System, l.ExternalID, l.Status, l.SeenAt, l.FirstSeen, l.GoneAt, l.Modified, l.Hash)
		for _, f := range keys(l.Fields) {
			fs := *l.Fields[f]
			report := "-"
			if fs.Report != nil {
				report = fs.Report.String()
			}
			fs.Report = nil
			fmt.Fprintf(&b, "    %s %+v report %s\n", f, fs, report)
		}
	}
	entries, err := w.store.AuditByRecord(context.Background(), rec.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range entries {
		e.Seq, e.RecordID, e.PrevHash, e.Hash = 0, 0, "", ""
		fmt.Fprintf(&b, "  audit %+v\n", *e)
	}
	return b.String()
}

// TestLoadAheadDecidesWhatEachChunkAlone: decideAll loads the stored
// records of several chunks in one read, before the batches ahead of them
// commit (loadAhead). In batches of two, records loaded three chunks at a
// time end as records loaded a chunk at a time leave them, after a pass
// over many edited, removed and unchanged records, and the pass after it.
func TestLoadAheadDecidesWhatEachChunkAlone(t *testing.T) {
	files := variedEstate(40)
	var got [2]*world
	for i, chunks := range []int{1, 3} {
		restore := engine.SetLoadAheadChunks(chunks)
		w := newWorld(t, baseConfig, files)
		w.opts = []engine.Option{engine.WithBatchSize(2)}
		w.sync()
		for j := 0; j < 40; j += 3 {
			id := fmt.Sprint(j)
			w.edit("idp.json", id, map[string]any{"status": []string{"suspended", "active"}[j%2]})
			if j%5 != 3 {
				w.edit("cmdb.json", id, map[string]any{"owner": "z" + id + "@x", "tags": []any{"pci", "t" + id}})
			}
		}
		w.remove("idp.json", "20")
		w.remove("idp.json", "31")
		w.clock.Advance(time.Hour)
		w.sync()
		w.edit("catalog.json", "12", map[string]any{"steward": "y12@x"})
		w.clock.Advance(time.Hour)
		w.sync()
		restore()
		got[i] = w
	}
	for i := range 40 {
		key := []string{"aws", fmt.Sprint("bot", i)}
		ahead, alone := got[1].describe(got[1].record("service_account", key...)), got[0].describe(got[0].record("service_account", key...))
		if ahead != alone {
			t.Fatalf("bot%d loaded three chunks at a time:\n%s\na chunk at a time:\n%s", i, ahead, alone)
		}
	}
}
