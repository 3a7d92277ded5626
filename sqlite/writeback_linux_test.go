//go:build linux

package sqlite

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteback: the writing out runs on a file until end, which waits
// for it and may be called twice; on a file it cannot open it does
// nothing, and end returns at once.
func TestWriteback(t *testing.T) {
	defer func(d time.Duration) { writebackEvery = d }(writebackEvery)
	writebackEvery = time.Millisecond
	name := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(name, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWriteback(name)
	time.Sleep(20 * time.Millisecond)
	select {
	case <-w.done:
		t.Fatal("the writing out stopped before end")
	default:
	}
	ended := make(chan struct{})
	go func() {
		w.end()
		w.end()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("end did not return")
	}
	missing := startWriteback(filepath.Join(t.TempDir(), "none"))
	missing.end()
	var none *writeback
	none.end()
}
