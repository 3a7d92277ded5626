package file_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync/connector/file"
)

// TestWatch: an edit is reported once the file holds still, and a file
// being written in pieces is never reported half-written.
func TestWatch(t *testing.T) {
	// Generous waits: the writer below pauses 30 ms between pieces, and a
	// loaded machine must not stretch a pause past the quiet period.
	defer file.SetWatchTiming(time.Second, 300*time.Millisecond)()
	c, _, path := fileSystem{name: "a.csv", content: "name,platform\nx,aws\n", fields: []string{"name=name", "platform=platform"}}.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var seen []string
	events := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, func(ids []string) {
			b, _ := os.ReadFile(path)
			mu.Lock()
			seen = append(seen, string(b))
			mu.Unlock()
			events <- struct{}{}
		})
	}()
	wait := func(what string, d time.Duration) bool {
		t.Helper()
		select {
		case <-events:
			return true
		case <-time.After(d):
			return false
		}
	}
	// Replace the file as writers do (temp file + rename) until the
	// watcher, which starts on its own time, reports it.
	var renamed string
	for i := 0; ; i++ {
		renamed = "name,platform\nx,gcp" + strings.Repeat("!", i) + "\n"
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(renamed), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		if wait("a rename", 3*time.Second) {
			break
		}
		if i == 20 {
			t.Fatal("no change reported after renames")
		}
	}
	mu.Lock()
	before := len(seen)
	mu.Unlock()

	// Written in pieces, 30 ms apart: reported once, complete.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	full := "name,platform\n"
	f.WriteString(full)
	for i := range 10 {
		line := "bot-" + strings.Repeat("z", i) + ",aws\n"
		full += line
		f.WriteString(line)
		f.Sync()
		time.Sleep(30 * time.Millisecond)
	}
	f.Close()
	if !wait("writing in pieces", 10*time.Second) {
		t.Fatal("no change reported after writing in pieces")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[before-1] != renamed || len(seen) != before+1 || seen[before] != full {
		t.Errorf("reported contents = %q; want the renamed file, then the complete file once", seen)
	}
}
