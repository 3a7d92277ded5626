package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/quickstart"
	"github.com/nhisync/nhisync/sqlite"
)

// TestAuditVerifiesEveryCheckpoint tampers with older checkpoints of a
// real store behind nhisync's back: `audit verify` must fail on each,
// naming the checkpoint, and pass again once the row is put back (issue
// 5, observation 5: overwriting an older checkpoint's note with garbage
// used to verify, because only the latest was checked).
func TestAuditVerifiesEveryCheckpoint(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	ctx := context.Background()
	dbPath := w.path(quickstart.DataDir + "/nhisync.db")

	// Three more checkpoints after the quickstart's sync, each over a few
	// more entries.
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.LoadOrCreateKey(w.path(quickstart.DataDir+"/audit.key"), "nhisync")
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	if err := st.ScanCheckpoints(ctx, func(c *nhisync.Checkpoint) error { sizes = append(sizes, c.Size); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b := &nhisync.Batch{}
		for range 2 + i {
			b.Audit = append(b.Audit, &nhisync.AuditEntry{Time: time.Date(2026, 11, 29, 12, i, 0, 0, time.UTC),
				Actor: "person:alice", Action: nhisync.ActConfigLoaded, Reason: "test"})
		}
		if err := st.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		cp, err := audit.Checkpoint(ctx, st, signer)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, cp.Size)
	}
	st.Close()
	if len(sizes) < 4 {
		t.Fatalf("checkpoints at %v, want at least 4", sizes)
	}
	verify := func() (ok bool, out string) {
		r := w.run(t, "audit", "verify")
		return r.code == exitOK, r.stdout + r.stderr
	}
	if ok, out := verify(); !ok || !strings.Contains(out, "audit log OK") {
		t.Fatalf("audit verify before tampering: %s", out)
	}

	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	type row struct {
		root, note []byte
		at         string
	}
	get := func(size int64) row {
		var r row
		if err := db.QueryRowContext(ctx, `SELECT root, note, at FROM checkpoints WHERE size = ?`, size).Scan(&r.root, &r.note, &r.at); err != nil {
			t.Fatal(err)
		}
		return r
	}
	put := func(size int64, r row) {
		if _, err := db.ExecContext(ctx, `INSERT OR REPLACE INTO checkpoints (size, root, note, at) VALUES (?, ?, ?, ?)`, size, r.root, r.note, r.at); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(q string, args ...any) {
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	old, mid, next := sizes[1], sizes[2], sizes[3]

	// A note signed for the same tree by a key of the same name that is
	// not the workspace's.
	otherKey, _, err := note.GenerateKey(rand.Reader, "nhisync")
	if err != nil {
		t.Fatal(err)
	}
	other, err := note.NewSigner(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	orig := get(old)
	text, _, _ := bytes.Cut(orig.note, []byte("\n\n"))
	foreign, err := note.Sign(&note.Note{Text: string(text) + "\n"}, other)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		tamper func()
		undo   []int64 // rows to put back
		want   string
	}{
		{name: "older note overwritten with garbage",
			tamper: func() { exec(`UPDATE checkpoints SET note = ? WHERE size = ?`, []byte("garbage"), old) },
			undo:   []int64{old},
			want:   "checkpoint at size " + itoa(old) + ": not a valid signed note (edited?)"},
		{name: "one deleted",
			tamper: func() { exec(`DELETE FROM checkpoints WHERE size = ?`, mid) },
			undo:   []int64{mid},
			want:   "checkpoint at size " + itoa(next) + ": it was signed after a checkpoint at size " + itoa(mid) + ", which is not stored (deleted?)"},
		{name: "two reordered",
			tamper: func() {
				a, b := get(old), get(mid)
				put(old, row{b.root, b.note, a.at})
				put(mid, row{a.root, a.note, b.at})
			},
			undo: []int64{old, mid},
			want: "checkpoint at size " + itoa(old) + ": stored at size " + itoa(old) + ", but its signed note is for size " + itoa(mid) + " (moved or reordered?)"},
		{name: "one signed by another key",
			tamper: func() { exec(`UPDATE checkpoints SET note = ? WHERE size = ?`, foreign, old) },
			undo:   []int64{old},
			want:   "checkpoint at size " + itoa(old) + ": not signed by key nhisync+"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := map[int64]row{}
			for _, size := range tt.undo {
				saved[size] = get(size)
			}
			tt.tamper()
			if ok, out := verify(); ok || !strings.Contains(out, tt.want) {
				t.Errorf("audit verify after tampering: ok=%v %q, want failure with %q", ok, out, tt.want)
			}
			for size, r := range saved {
				put(size, r)
			}
			if ok, out := verify(); !ok {
				t.Fatalf("audit verify after putting the rows back: %s", out)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
