package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"path/filepath"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/sqlite"
)

// TestStoreCopyKeepsLegacyLeaves: a store whose leaves were written before
// absent values were left out ("old":null, "new":null) copies leaf for
// leaf: each entry seals in the copy to the leaf and hash it has in the
// source.
func TestStoreCopyKeepsLegacyLeaves(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, err := sqlite.Open(ctx, filepath.Join(dir, "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	entries := []*nhisync.AuditEntry{
		{Time: at, Actor: nhisync.Actor, Action: nhisync.ActConfigLoaded, Reason: "fingerprint"},
		{Time: at, Actor: "idp", Action: nhisync.ActRecordCreated, Kind: "service_account", RecordID: 1, Record: "aws/bot", System: "idp", New: nhisync.Str("u-1"), Reason: "create_from",
			Links: []nhisync.AuditLink{{System: "cmdb", ID: "c-1", Reason: nhisync.ReasonMatch}}},
		{Time: at, Actor: "idp", Action: nhisync.ActAccepted, Kind: "service_account", RecordID: 1, Field: "owner", System: "idp", Old: nhisync.Str("a"), New: nhisync.Str("b")},
	}
	if err := src.Commit(ctx, &nhisync.Batch{Audit: entries}); err != nil {
		t.Fatal(err)
	}
	// Rewrite the source's leaves as they were written before.
	db, err := sql.Open("sqlite", filepath.Join(dir, "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `DROP TRIGGER audit_no_update`); err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	prev := ""
	for _, e := range entries {
		e.PrevHash = prev
		leaf := e.LeafBytes()
		var mid string
		if e.Old.IsZero() {
			mid += `,"old":null`
		}
		if e.New.IsZero() {
			mid += `,"new":null`
		}
		// "old" and "new" come after the last of actor to system.
		i := bytes.Index(leaf, []byte(`,"reason":`))
		if !e.New.IsZero() {
			i = bytes.Index(leaf, []byte(`,"new":`))
		}
		leaf = append(leaf[:i:i], append([]byte(mid), leaf[i:]...)...)
		prev = base64.StdEncoding.EncodeToString(nhisync.LeafHash(leaf))
		if _, err := db.ExecContext(ctx, `UPDATE audit SET leaf = ?, hash = ? WHERE seq = ?`, leaf, prev, e.Seq); err != nil {
			t.Fatal(err)
		}
		want = append(want, leaf)
	}
	if !bytes.Contains(want[0], []byte(`"old":null,"new":null`)) || !bytes.Contains(want[1], []byte(`"old":null,"new":"u-1"`)) {
		t.Fatalf("legacy leaves %s %s", want[0], want[1])
	}
	dst, err := sqlite.Open(ctx, filepath.Join(dir, "dst.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := copyStore(ctx, src, dst, false); err != nil {
		t.Fatal(err)
	}
	i := 0
	if err := dst.ScanAudit(ctx, 0, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		if !bytes.Equal(leaf, want[i]) {
			t.Errorf("entry %d copied as\n%s\nwant\n%s", i+1, leaf, want[i])
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != len(want) {
		t.Fatalf("%d entries copied, want %d", i, len(want))
	}
}
