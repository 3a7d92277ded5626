package sqlite

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// createdEntries gives b one record.created entry per record, about a
// kilobyte each as a first pass's are, and one entry of no record.
func createdEntries(b *nhisync.Batch, at time.Time) {
	for _, r := range b.Records {
		e := &nhisync.AuditEntry{Time: at, Actor: "idp", Action: nhisync.ActRecordCreated, Kind: r.Kind,
			RecordID: r.ID, Record: r.Key, System: "idp", New: nhisync.Str(fmt.Sprintf("u-%d", r.ID)), Reason: "create_from"}
		for f := range 10 {
			e.Fields = append(e.Fields, nhisync.AuditField{Field: fmt.Sprintf("field_%d", f), System: "cmdb",
				Value: nhisync.Str(fmt.Sprintf("value %d of record %d, long enough to be a real one", f, r.ID)), Agreed: []string{"idp"}})
		}
		b.Audit = append(b.Audit, e)
	}
	b.Audit = append(b.Audit, &nhisync.AuditEntry{Time: at, Actor: "nhisync", Action: nhisync.ActConfigLoaded})
}

// TestAuditLeafPage: of every page of a store that a bulk window and a
// commit after it filled (records, links, link states, the outbox, the
// audit log and their indexes), auditLeafPage picks exactly the audit
// table's leaves, as SQLite's dbstat names them.
func TestAuditLeafPage(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	beginBulk(t, s)
	for i := range 3 {
		b := windowBatch(t, s, 300, t0.Add(time.Duration(i)*time.Minute))
		createdEntries(b, t0)
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	b := windowBatch(t, s, 50, t0.Add(time.Hour))
	createdEntries(b, t0.Add(time.Hour))
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	pageSize := pragma[int](t, s.r, "page_size")
	rows, err := s.r.QueryContext(ctx, `SELECT name, pageno, pagetype FROM dbstat`)
	if err != nil {
		t.Fatal(err)
	}
	type page struct{ name, kind string }
	pages := map[int64]page{}
	for rows.Next() {
		var p page
		var no int64
		if err := rows.Scan(&p.name, &no, &p.kind); err != nil {
			t.Fatal(err)
		}
		pages[no] = p
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	leaves := map[string]int{}
	for no := int64(2); no*int64(pageSize) <= int64(len(file)); no++ {
		p := pages[no]
		if p.kind == "leaf" {
			leaves[p.name]++
		}
		want := p.name == "audit" && p.kind == "leaf"
		if got := auditLeafPage(file[(no-1)*int64(pageSize) : no*int64(pageSize)]); got != want {
			t.Errorf("page %d (%s %s): auditLeafPage = %v, want %v", no, p.name, p.kind, got, want)
		}
	}
	for _, name := range []string{"audit", "records", "link_state", "links", "outbox", "records_key", "audit_record"} {
		if leaves[name] == 0 {
			t.Errorf("no leaf page of %s in the store: the test tells it apart from nothing (leaves: %v)", name, leaves)
		}
	}
	if leaves["audit"] < 100 {
		t.Errorf("%d audit leaves, want at least 100", leaves["audit"])
	}
}

// TestBulkWindowDropsAuditPages: a bulk window's writer goroutine asks
// the kernel to drop the audit pages it wrote from its cache, and the
// store reads as written after it: every entry there, integrity intact.
func TestBulkWindowDropsAuditPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the window's writes are queued on Linux only")
	}
	age := coldAge
	coldAge = 0
	defer func() { coldAge = age }()
	s := openTest(t)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dropped := bulkColdDropped.Load()
	beginBulk(t, s)
	entries := 0
	for i := range 4 {
		b := windowBatch(t, s, 300, t0.Add(time.Duration(i)*time.Minute))
		createdEntries(b, t0)
		entries += len(b.Audit)
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bulkColdDropped.Load() - dropped; got < 100*4096 {
		t.Errorf("the window dropped %d bytes of audit pages from the cache, want at least 100 pages", got)
	}
	s = reopenTest(t, s)
	var check string
	if err := s.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check after the window = %q, %v", check, err)
	}
	n := 0
	err := s.ScanAudit(ctx, 1, 1<<62, func(e *nhisync.AuditEntry, leaf []byte) error {
		n++
		if e.Action == nhisync.ActRecordCreated && len(e.Fields) != 10 {
			return fmt.Errorf("entry %d has %d fields, want 10", e.Seq, len(e.Fields))
		}
		return nil
	})
	if err != nil || n != entries {
		t.Fatalf("read %d entries back (%v), want %d", n, err, entries)
	}
}
