package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// fillRecords commits n small records, enough to span many pages.
func fillRecords(t *testing.T, s *Store, n int) {
	t.Helper()
	ctx := t.Context()
	first, err := s.NewIDs(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	b := &nhisync.Batch{}
	for i := range n {
		name := fmt.Sprintf("svc-%05d-%s", i, strings.Repeat("x", 60))
		b.Records = append(b.Records, &nhisync.Record{ID: first + int64(i), Kind: "service_account",
			Key: "aws/" + name, MatchKey: "aws\x00" + name,
			Fields: map[string]*nhisync.Golden{"name": {Value: nhisync.Str(name), Source: "idp"}}})
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// corruptTable overwrites the root page of table in the closed store at
// path with garbage.
func corruptTable(t *testing.T, path, table string) {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := s.r.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = ?`, table).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xde\xad\xbe\xef", int(pageSize/4))), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// wantFault checks err names the cause and the remedy.
func wantFault(t *testing.T, what string, err error, mentions ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	msg := nhisync.ErrorMessage(err)
	if strings.Contains(msg, "store failure") {
		t.Errorf("%s: %q does not name the cause", what, msg)
	}
	for _, m := range mentions {
		if !strings.Contains(msg, m) {
			t.Errorf("%s: %q does not mention %q", what, msg, m)
		}
	}
}

// TestStoreFaultsNamed (issue 6 finding 14): a full disk, a read-only store
// and a corrupt store each say what is wrong and what to do.
func TestStoreFaultsNamed(t *testing.T) {
	t.Run("disk full", func(t *testing.T) {
		s := openTest(t)
		fillRecords(t, s, 10)
		// max_page_count at the current size makes SQLite behave as on a
		// full volume: SQLITE_FULL.
		if err := s.ExecRaw(t.Context(), `PRAGMA max_page_count = 1`); err != nil {
			t.Fatal(err)
		}
		id, err := s.NewIDs(t.Context(), 1)
		if err == nil {
			err = s.Commit(t.Context(), &nhisync.Batch{Meta: map[string]string{"k": strings.Repeat("v", 100000)}, Records: []*nhisync.Record{{ID: id, Kind: "k", Key: "a", MatchKey: "a"}}})
		}
		wantFault(t, "commit on a full disk", err, "disk holding the store is full", "free space")
		if err := s.ExecRaw(t.Context(), `PRAGMA max_page_count = 1073741823`); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		s := openTest(t)
		if err := s.ExecRaw(t.Context(), `PRAGMA query_only = 1`); err != nil {
			t.Fatal(err)
		}
		err := s.Commit(t.Context(), &nhisync.Batch{Meta: map[string]string{"k": "v"}})
		wantFault(t, "commit to a read-only store", err, "read-only", "writable")
		if err := s.ExecRaw(t.Context(), `PRAGMA query_only = 0`); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nhisync.db")
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		fillRecords(t, s, 400)
		s.Close()
		corruptTable(t, path, "records")
		s, err = Open(t.Context(), path)
		if err != nil {
			wantFault(t, "open of a corrupt store", err, "corrupt", "backup")
			return
		}
		defer s.Close()
		err = s.ScanRecords(t.Context(), "", func(*nhisync.Record) error { return nil })
		wantFault(t, "reading a corrupt store", err, "corrupt", "backup")
	})
}

// TestOpenChecksAfterUncleanShutdown (issue 6 finding 14): a WAL left by a
// process that never closed the store makes Open run quick_check, and a
// corrupt store is refused before anything reads it.
func TestOpenChecksAfterUncleanShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nhisync.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	fillRecords(t, s, 400)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatal("a clean close left the WAL behind; the unclean-shutdown sign would always be on")
	}
	corruptTable(t, path, "links")
	// Left as a killed process leaves it.
	if err := os.WriteFile(path+"-wal", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), path)
	wantFault(t, "open after an unclean shutdown", err, "corrupt", "quick_check", "restore it from a backup")
	if nhisync.ErrorCode(err) != nhisync.EINVALID {
		t.Errorf("code %q, want %q", nhisync.ErrorCode(err), nhisync.EINVALID)
	}

	// A healthy store after an unclean shutdown opens.
	good := filepath.Join(t.TempDir(), "nhisync.db")
	s, err = Open(t.Context(), good)
	if err != nil {
		t.Fatal(err)
	}
	fillRecords(t, s, 10)
	s.Close()
	if err := os.WriteFile(good+"-wal", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), good)
	if err != nil {
		t.Fatalf("Open of a healthy store after an unclean shutdown: %v", err)
	}
	s.Close()
}
