package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// Benchmarks every store runs from its own Benchmark functions, so stores
// compare on the same work (SPEC §8: PostgreSQL within 1.5 × SQLite).
// open must return a new, empty store and arrange for it to be closed.

// benchLink returns a link as a pass writes it: six mapped fields, each
// with its shadow and assertion, and a content hash.
func benchLink(system string, i int, recordID int64) *nhisync.Link {
	ext := fmt.Sprintf("%s-%08d", system, i)
	h := sha256.Sum256([]byte(ext))
	return &nhisync.Link{
		System: system, ExternalID: ext, RecordID: recordID, Status: nhisync.LinkLive, Hash: h[:],
		Fields: map[string]*nhisync.FieldState{
			"name":           {Shadow: nhisync.Str(ext), Asserted: nhisync.Str(ext), Since: at(1)},
			"platform":       {Shadow: nhisync.Str("aws"), Asserted: nhisync.Str("aws"), Since: at(1)},
			"owner":          {Shadow: nhisync.Str("team-payments@example.com"), Asserted: nhisync.Str("team-payments@example.com"), Since: at(2)},
			"lifecycle":      {Shadow: nhisync.Str("active"), Asserted: nhisync.Str("active"), Since: at(3)},
			"classification": {Shadow: nhisync.SetOf("pci", "internal"), Asserted: nhisync.SetOf("pci", "internal"), Since: at(4)},
			"entitlements":   {Shadow: nhisync.SetOf("s3:GetObject", "kms:Decrypt", "sqs:SendMessage"), Asserted: nhisync.SetOf("s3:GetObject", "kms:Decrypt", "sqs:SendMessage"), Since: at(5)},
		},
		FirstSeen: at(0), SeenAt: at(10), Modified: at(9),
	}
}

// BenchmarkCommitLinks commits batches of 10,000 new links (what a first
// pass writes per system step) and reports links per second.
func BenchmarkCommitLinks(b *testing.B, open func(b *testing.B) nhisync.Store) {
	const perBatch = 10000
	s := open(b)
	ctx := b.Context()
	n := 0
	for b.Loop() {
		b.StopTimer()
		batch := &nhisync.Batch{Links: make([]*nhisync.Link, perBatch)}
		for i := range batch.Links {
			batch.Links[i] = benchLink("idp", n, 0)
			n++
		}
		b.StartTimer()
		if err := s.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "links/s")
}

// BenchmarkLoadRecords loads 500 records per call, each with three links
// and some open work, from a store of 20,000, and reports records per
// second.
func BenchmarkLoadRecords(b *testing.B, open func(b *testing.B) nhisync.Store) {
	const records, perCall = 20000, 500
	s := open(b)
	ctx := b.Context()
	first, err := s.NewIDs(ctx, 2*records)
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < records; start += 5000 {
		var batch nhisync.Batch
		for i := start; i < start+5000; i++ {
			r := record(first+int64(i), "service_account", fmt.Sprintf("bot-%08d", i))
			batch.Records = append(batch.Records, r)
			for _, sys := range []string{"idp", "cmdb", "catalog"} {
				batch.Links = append(batch.Links, benchLink(sys, i, r.ID))
			}
			if i%10 == 0 {
				batch.Outbox = append(batch.Outbox, &nhisync.OutboxWrite{ID: first + records + int64(i), System: "cmdb",
					ExternalID: fmt.Sprintf("cmdb-%08d", i), RecordID: r.ID, Kind: r.Kind, Record: r.Name(), Field: "owner",
					Old: nhisync.Str("a@x"), New: nhisync.Str("b@x"), Status: nhisync.OutboxReady, NextAt: at(1), Created: at(1)})
			}
			if i%10 == 5 {
				batch.Conflicts = append(batch.Conflicts, &nhisync.Conflict{ID: first + records + int64(i), Kind: r.Kind, RecordID: r.ID,
					Record: r.Name(), Field: "owner", Status: nhisync.StatusOpen, Opened: at(1),
					Proposals: []nhisync.Proposal{{System: "idp", Value: nhisync.Str("a@x")}, {System: "cmdb", Value: nhisync.Str("b@x")}}})
			}
		}
		if err := s.Commit(ctx, &batch); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]int64, perCall)
	call := 0
	for b.Loop() {
		// Spread calls over the store, as a pass that loads changed
		// records does.
		base := (call * 7919) % (records - perCall)
		for i := range ids {
			ids[i] = first + int64(base+i)
		}
		call++
		got, err := s.LoadRecords(ctx, ids)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != perCall {
			b.Fatalf("LoadRecords returned %d records, want %d", len(got), perCall)
		}
	}
	b.ReportMetric(float64(call*perCall)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppendAudit commits batches of 10,000 audit entries, which the
// store seals into the chain, and reports entries per second.
func BenchmarkAppendAudit(b *testing.B, open func(b *testing.B) nhisync.Store) {
	const perBatch = 10000
	s := open(b)
	ctx := b.Context()
	n := 0
	for b.Loop() {
		b.StopTimer()
		batch := &nhisync.Batch{Audit: make([]*nhisync.AuditEntry, perBatch)}
		for i := range batch.Audit {
			batch.Audit[i] = audit(int64(n%5000+1), nhisync.ActAccepted, "owner", nhisync.Str("a@example.com"), nhisync.Str(fmt.Sprintf("b%d@example.com", n)))
			n++
		}
		b.StartTimer()
		if err := s.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

// cpuMeter reports the process's CPU time per operation of a benchmark
// loop (cpu-ns/op), next to the wall time b measures.
type cpuMeter struct {
	start time.Duration
	ops   int
}

func (m *cpuMeter) begin() { m.start = ProcessCPU() }

func (m *cpuMeter) report(b *testing.B) {
	if used := ProcessCPU() - m.start; used > 0 && m.ops > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(m.ops), "cpu-ns/op")
	}
}

// firstPassBatch is what one step of a first pass commits for the records
// first to first+perStep-1: each record new, linked in three systems under
// scattered external ids (GUID-like, as real systems hand them out, so the
// store's B-trees take them in no particular order), with one
// record.created audit entry carrying its first values.
func firstPassBatch(first int64, n int) *nhisync.Batch {
	b := &nhisync.Batch{
		Records: make([]*nhisync.Record, 0, n),
		Links:   make([]*nhisync.Link, 0, 3*n),
		Audit:   make([]*nhisync.AuditEntry, 0, n),
	}
	for i := range n {
		id := first + int64(i)
		r := record(id, "service_account", fmt.Sprintf("svc-%016x", scatter(uint64(id))))
		b.Records = append(b.Records, r)
		for k, sys := range []string{"idp", "cmdb", "catalog"} {
			l := benchLink(sys, 0, id)
			l.ExternalID = fmt.Sprintf("%08x-%04x-%012x", scatter(uint64(id)<<2|uint64(k))>>32, id&0xffff, scatter(uint64(id)<<2|uint64(k))&0xffffffffffff)
			b.Links = append(b.Links, l)
		}
		e := audit(id, nhisync.ActRecordCreated, "", nhisync.Value{}, nhisync.Value{})
		e.Reason = "name=" + r.Key + " platform=aws owner=ana@example.com lifecycle=active classification=[pci,internal]"
		b.Audit = append(b.Audit, e)
	}
	return b
}

// scatter is splitmix64's finalizer: distinct inputs, scattered outputs.
func scatter(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// fill commits records new records, perStep to a batch, as a first pass
// does, and returns the first one's ID.
func fill(b *testing.B, s nhisync.Store, records, perStep int) int64 {
	ctx := b.Context()
	first, err := s.NewIDs(ctx, records)
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < records; start += perStep {
		if err := s.Commit(ctx, firstPassBatch(first+int64(start), min(perStep, records-start))); err != nil {
			b.Fatal(err)
		}
	}
	return first
}

// BenchmarkCommitFirstPass commits a first pass's steps — 500 new records,
// each with three links under scattered external ids and a record.created
// audit entry — into a store that already holds 20,000 such records, and
// reports records per second. Run it with a fixed -benchtime (e.g. 100x):
// the store grows with every step, as it does during a first pass.
func BenchmarkCommitFirstPass(b *testing.B, open func(b *testing.B) nhisync.Store) {
	const held, perStep = 20000, 500
	s := open(b)
	ctx := b.Context()
	fill(b, s, held, perStep)
	n := 0
	var cpu, used time.Duration
	for b.Loop() {
		b.StopTimer()
		first, err := s.NewIDs(ctx, perStep)
		if err != nil {
			b.Fatal(err)
		}
		batch := firstPassBatch(first, perStep)
		b.StartTimer()
		cpu = ProcessCPU()
		if err := s.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
		used += ProcessCPU() - cpu
		n += perStep
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	if used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkScanLinkHeads scans the heads of one system's 100,000 links (what
// a quiet pass loads per system) and reports links per second.
func BenchmarkScanLinkHeads(b *testing.B, open func(b *testing.B) nhisync.Store) {
	s := open(b)
	benchScan(b, s, "ScanLinkHeads", "links", func(ctx context.Context) (int, error) {
		got := 0
		err := s.ScanLinkHeads(ctx, "cmdb", func(h nhisync.LinkHead) error {
			got++
			return nil
		})
		return got, err
	})
}

// BenchmarkScanLinkHeadPages is BenchmarkScanLinkHeads through
// nhisync.LinkHeadPager (skipped for a store without it).
func BenchmarkScanLinkHeadPages(b *testing.B, open func(b *testing.B) nhisync.Store) {
	s := open(b)
	pager, ok := s.(nhisync.LinkHeadPager)
	if !ok {
		b.Skip("the store hands out no pages of link heads")
	}
	benchScan(b, s, "ScanLinkHeadPages", "links", func(ctx context.Context) (int, error) {
		got := 0
		err := pager.ScanLinkHeadPages(ctx, "cmdb", func(page []nhisync.LinkHead) error {
			got += len(page)
			return nil
		})
		return got, err
	})
}

// BenchmarkScanRecordHeads scans the heads of 100,000 records (what every
// pass loads first) and reports records per second.
func BenchmarkScanRecordHeads(b *testing.B, open func(b *testing.B) nhisync.Store) {
	s := open(b)
	benchScan(b, s, "ScanRecordHeads", "records", func(ctx context.Context) (int, error) {
		got := 0
		err := s.ScanRecordHeads(ctx, func(h nhisync.RecordHead) error {
			got++
			return nil
		})
		return got, err
	})
}

// benchScan fills s with 100,000 records (each with its links, 5,000 a
// commit) and times scan, which reads them all and returns how many
// heads it saw, failing unless it saw all 100,000 (name says which scan
// did not), and reports heads per second (unit: links or records) and
// CPU time per scan.
func benchScan(b *testing.B, s nhisync.Store, name, unit string, scan func(ctx context.Context) (int, error)) {
	b.Helper()
	const records = 100000
	fill(b, s, records, 5000)
	ctx := b.Context()
	n := 0
	var m cpuMeter
	m.begin()
	for b.Loop() {
		m.ops++
		got, err := scan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if got != records {
			b.Fatalf("%s saw %d %s, want %d", name, got, unit, records)
		}
		n += got
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit+"/s")
	m.report(b)
}

// BenchmarkBulkLoad loads a first pass of 20,000 records — 500 a commit,
// each with three links under scattered external ids and a record.created
// entry — into a new, empty store, inside the store's bulk window when it
// has one (nhisync.BulkLoader, closed and counted at the end), and reports
// records per second. Run it with a small fixed -benchtime (e.g. 3x): each
// iteration opens a store.
func BenchmarkBulkLoad(b *testing.B, open func(b *testing.B) nhisync.Store) {
	const records, perStep = 20000, 500
	ctx := b.Context()
	n := 0
	var used time.Duration
	for b.Loop() {
		b.StopTimer()
		s := open(b)
		first, err := s.NewIDs(ctx, records)
		if err != nil {
			b.Fatal(err)
		}
		batches := make([]*nhisync.Batch, 0, records/perStep)
		for start := 0; start < records; start += perStep {
			batches = append(batches, firstPassBatch(first+int64(start), perStep))
		}
		b.StartTimer()
		cpu := ProcessCPU()
		bl, bulk := s.(nhisync.BulkLoader)
		if bulk {
			if open, err := bl.BeginBulk(ctx); err != nil || !open {
				b.Fatalf("BeginBulk on an empty store = %v, %v", open, err)
			}
		}
		for _, batch := range batches {
			if err := s.Commit(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		if bulk {
			if err := bl.EndBulk(ctx); err != nil {
				b.Fatal(err)
			}
		}
		used += ProcessCPU() - cpu
		n += records
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	if used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkBulkCommit commits a first pass of 60,000 records into a new,
// empty store as BenchmarkBulkLoad does, inside the bulk window when the
// store has one, and measures the commits of the last 20,000 alone
// (cpu-ns/commit is the process's CPU of one commit of 500 records,
// own-cpu-ns/commit its committing goroutine's alone, without the helpers
// it starts or the WAL checkpointer): in a first pass
// they are the critical path of the decide phase, while closing the window
// is a phase of its own, and the first commits also fill the store's page
// caches, which a long pass does once. Each batch's audit leaves are
// encoded ahead (Batch.PrepareAudit) and one record in ten queues a write,
// as the engine's batches do. Run it with a small fixed -benchtime (e.g.
// 3x): each iteration opens a store.
func BenchmarkBulkCommit(b *testing.B, open func(b *testing.B) nhisync.Store) {
	const records, timed, perStep = 60000, 20000, 500
	ctx := b.Context()
	commits := 0
	var used, onThread time.Duration
	for b.Loop() {
		b.StopTimer()
		s := open(b)
		first, err := s.NewIDs(ctx, 2*records)
		if err != nil {
			b.Fatal(err)
		}
		batches := make([]*nhisync.Batch, 0, records/perStep)
		for start := 0; start < records; start += perStep {
			batch := firstPassBatch(first+int64(start), perStep)
			for i, r := range batch.Records {
				if i%10 == 3 {
					batch.Outbox = append(batch.Outbox, &nhisync.OutboxWrite{ID: first + records + r.ID - first, System: "cmdb",
						ExternalID: batch.Links[3*i+1].ExternalID, RecordID: r.ID, Kind: r.Kind, Record: r.Name(), Field: "owner",
						Old: nhisync.Str("a@example.com"), New: nhisync.Str("b@example.com"), Status: nhisync.OutboxReady, NextAt: at(1), Created: at(1)})
				}
			}
			batch.PrepareAudit()
			batches = append(batches, batch)
		}
		bl, bulk := s.(nhisync.BulkLoader)
		if bulk {
			if open, err := bl.BeginBulk(ctx); err != nil || !open {
				b.Fatalf("BeginBulk on an empty store = %v, %v", open, err)
			}
		}
		warm := (records - timed) / perStep
		for _, batch := range batches[:warm] {
			if err := s.Commit(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		runtime.LockOSThread()
		cpu, own := ProcessCPU(), ThreadCPU()
		for _, batch := range batches[warm:] {
			if err := s.Commit(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		used += ProcessCPU() - cpu
		onThread += ThreadCPU() - own
		runtime.UnlockOSThread()
		commits += len(batches) - warm
		b.StopTimer()
		if bulk {
			if err := bl.EndBulk(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	if used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(commits), "cpu-ns/commit")
	}
	if onThread > 0 {
		b.ReportMetric(float64(onThread.Nanoseconds())/float64(commits), "own-cpu-ns/commit")
	}
}

// BenchmarkClaimOutbox claims 2,000 of 20,000 queued writes (two systems,
// interleaved, as a first pass queues them), renews the claim in four
// chunks of 500 as a drain does before each chunk leaves, and releases
// it: a drain's claim work without the outcomes.
func BenchmarkClaimOutbox(b *testing.B, open func(b *testing.B) nhisync.Store) {
	s := open(b)
	ctx := b.Context()
	const queued, claimed, chunk = 20000, 2000, 500
	first, err := s.NewIDs(ctx, queued)
	if err != nil {
		b.Fatal(err)
	}
	batch := &nhisync.Batch{}
	for i := range queued {
		system := []string{"cmdb", "catalog"}[i%2]
		batch.Outbox = append(batch.Outbox, &nhisync.OutboxWrite{ID: first + int64(i), System: system, ExternalID: fmt.Sprintf("%s-%08d", system, i),
			RecordID: int64(i + 1), Kind: "service_account", Record: fmt.Sprintf("aws/bot-%08d", i), Field: "owner",
			Old: nhisync.Str("team-old@example.com"), New: nhisync.Str("team-payments@example.com"), Status: nhisync.OutboxReady,
			Cause: "cmdb", Rule: "cmdb (authority)", NextAt: at(1), Created: at(1), Counts: true})
	}
	if err := s.Commit(ctx, batch); err != nil {
		b.Fatal(err)
	}
	now := at(2)
	var cpu cpuMeter
	cpu.begin()
	for b.Loop() {
		c, ws, err := s.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "catalog", Limit: claimed, Holder: "bench", Now: now, TTL: time.Minute})
		if err != nil || len(ws) != claimed {
			b.Fatalf("ClaimOutbox: %d writes, %v; want %d", len(ws), err, claimed)
		}
		for start := 0; start < len(c.IDs); start += chunk {
			if err := s.RenewClaim(ctx, c, c.IDs[start:start+chunk], now, time.Minute); err != nil {
				b.Fatalf("RenewClaim: %v", err)
			}
		}
		if err := s.ReleaseClaim(ctx, c); err != nil {
			b.Fatal(err)
		}
		cpu.ops++
	}
	cpu.report(b)
}

// BenchmarkClaimQueue claims, as a first pass's drain does, every queued
// write of one system of three whose 105,000 writes (a 1M-NHI first
// pass's) were queued interleaved: 2,000 a claim, each claim's writes
// then settled 500 a commit, while another system's writes are held by a
// claim of their own and the third's wait. It reports the CPU of the
// claims per write claimed, and of the commits that queued the writes and
// settled the claimed ones.
func BenchmarkClaimQueue(b *testing.B, open func(b *testing.B) nhisync.Store) {
	const queued, claimed, chunk = 105000, 2000, 500
	systems := []string{"idp", "cmdb", "catalog"}
	var claims, queue, settle time.Duration
	writes := 0
	for b.Loop() {
		b.StopTimer()
		s := open(b)
		ctx := b.Context()
		first, err := s.NewIDs(ctx, queued)
		if err != nil {
			b.Fatal(err)
		}
		for start := 0; start < queued; start += 5000 {
			batch := &nhisync.Batch{}
			for i := start; i < min(start+5000, queued); i++ {
				system := systems[i%len(systems)]
				batch.Outbox = append(batch.Outbox, &nhisync.OutboxWrite{ID: first + int64(i), System: system, ExternalID: fmt.Sprintf("%s-%08d", system, i),
					RecordID: int64(i + 1), Kind: "service_account", Record: fmt.Sprintf("aws/bot-%08d", i), Field: "owner",
					Old: nhisync.Str("team-old@example.com"), New: nhisync.Str("team-payments@example.com"), Status: nhisync.OutboxReady,
					Cause: "cmdb", Rule: "cmdb (authority)", NextAt: at(1), Created: at(1), Counts: true})
			}
			start := ProcessCPU()
			if err := s.Commit(ctx, batch); err != nil {
				b.Fatal(err)
			}
			queue += ProcessCPU() - start
		}
		now := at(2)
		if _, _, err := s.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "cmdb", Holder: "other", Now: now.Add(-time.Second), TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for {
			start := ProcessCPU()
			c, ws, err := s.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "idp", Limit: claimed, Holder: "bench", Now: now, TTL: time.Hour})
			claims += ProcessCPU() - start
			if err != nil {
				b.Fatal(err)
			}
			if len(ws) == 0 {
				break
			}
			writes += len(ws)
			start = ProcessCPU()
			for k := 0; k < len(c.IDs); k += chunk {
				if err := s.Commit(ctx, &nhisync.Batch{OutboxDone: c.IDs[k:min(k+chunk, len(c.IDs))], Claim: c}); err != nil {
					b.Fatal(err)
				}
			}
			settle += ProcessCPU() - start
		}
	}
	if writes != b.N*queued/len(systems) {
		b.Fatalf("claimed %d writes in %d runs, want %d each", writes, b.N, queued/len(systems))
	}
	b.ReportMetric(float64(claims.Nanoseconds())/float64(writes), "claim-cpu-ns/write")
	// What queueing every write and settling the claimed ones cost, per
	// write queued and settled: an index of the outbox costs them.
	b.ReportMetric(float64(queue.Nanoseconds())/float64(b.N*queued), "queue-cpu-ns/write")
	b.ReportMetric(float64(settle.Nanoseconds())/float64(writes), "settle-cpu-ns/write")
}

// BenchmarkLoadLinks loads 500 links of one system per call, spread over
// the 20,000 it holds (what a drain's outcome reads, a chunk at a time).
func BenchmarkLoadLinks(b *testing.B, open func(b *testing.B) nhisync.Store) {
	s := open(b)
	ctx := b.Context()
	const stored, perCall = 20000, 500
	batch := &nhisync.Batch{}
	for i := range stored {
		batch.Links = append(batch.Links, benchLink("catalog", i, 0))
	}
	if err := s.Commit(ctx, batch); err != nil {
		b.Fatal(err)
	}
	var cpu cpuMeter
	cpu.begin()
	call := 0
	for b.Loop() {
		ids := make([]string, perCall)
		for i := range ids {
			ids[i] = batch.Links[(i*(stored/perCall)+call)%stored].ExternalID
		}
		call++
		got, err := s.LoadLinks(ctx, "catalog", ids)
		if err != nil || len(got) != perCall {
			b.Fatalf("LoadLinks: %d links, %v; want %d", len(got), err, perCall)
		}
		cpu.ops++
	}
	cpu.report(b)
}
