package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// The checkpointer copies the WAL back at walCheckpointPages, the writer
// at twice that, SQLite's autocheckpoint (the backstop) at twice again.
func TestWriterCheckpointsWALAtTheHardLimit(t *testing.T) {
	s := openTest(t)
	var pages int
	if err := s.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != 262144 || walHardLimitPages != 2*walCheckpointPages || walCheckpointPages != 65536 {
		t.Fatalf("wal_autocheckpoint = %d (checkpointer at %d, writer at %d), want 262144, 65536, 131072", pages, walCheckpointPages, walHardLimitPages)
	}
}

// TestIdleCheckpoint: once commits stop, the WAL is copied back into the
// database (whose file then grows: the schema and the commit were only in
// the WAL).
func TestIdleCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the idle checkpoint")
	}
	s := openTest(t)
	ctx := t.Context()
	if err := s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	// The database file grows when the checkpoint copies the commit in.
	fi, err := os.Stat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	before := fi.Size()
	deadline := time.Now().Add(idleCheckpoint + 10*time.Second)
	for {
		fi, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint %v after the last commit: database still %d bytes", idleCheckpoint+10*time.Second, fi.Size())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// smallWAL opens a store whose checkpointer copies at every 16 frames and
// whose writer never checkpoints itself (hard limit off).
func smallWAL(t *testing.T, hard int) *Store {
	t.Helper()
	c, h := walCheckpointPages, walHardLimitPages
	walCheckpointPages, walHardLimitPages = 16, hard
	defer func() { walCheckpointPages, walHardLimitPages = c, h }()
	return openTest(t)
}

// walFrames reads the WAL's frames and how many are copied back.
func walFrames(t *testing.T, s *Store) (frames, copied uint32) {
	t.Helper()
	c := &walCheckpointer{shm: s.ckpt.shm}
	defer func() {
		if c.f != nil {
			c.f.Close()
		}
	}()
	frames, copied, ok := c.walIndex()
	if !ok {
		t.Fatal("the wal-index cannot be read")
	}
	return frames, copied
}

// fewPages is a commit of about n pages: n records of a page each.
func fewPages(t *testing.T, s *Store, n int) *nhisync.Batch {
	t.Helper()
	first, err := s.NewIDs(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	b := &nhisync.Batch{}
	for i := range n {
		id := first + int64(i)
		name := fmt.Sprintf("svc-%d-%s", id, strings.Repeat("x", 3000))
		b.Records = append(b.Records, &nhisync.Record{ID: id, Kind: "service_account", Key: "aws/" + name, MatchKey: "aws\x00" + name})
	}
	return b
}

// TestCheckpointerCopiesAndTheWALStartsOver: with the writer never
// checkpointing itself, the checkpointer copies the WAL back and, once it
// has caught up between two commits, the WAL starts over: its frames stay
// bounded however many commits come.
func TestCheckpointerCopiesAndTheWALStartsOver(t *testing.T) {
	s := smallWAL(t, 1<<30)
	ctx := t.Context()
	most, restarts, last := uint32(0), 0, uint32(0)
	for range 60 {
		if err := s.Commit(ctx, fewPages(t, s, 4)); err != nil {
			t.Fatal(err)
		}
		// A pass decides its next batch while the checkpointer works:
		// here the next commit waits until every frame is copied.
		deadline := time.Now().Add(30 * time.Second)
		for {
			frames, copied := walFrames(t, s)
			most = max(most, frames)
			if frames < last {
				restarts++
			}
			last = frames
			if frames == copied || frames < s.ckpt.limit {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the checkpointer left %d of %d frames uncopied", frames-copied, frames)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if s.ckpt.runs.Load() == 0 {
		t.Fatal("the checkpointer never ran")
	}
	if s.ckpt.hardRuns.Load() != 0 {
		t.Errorf("the writer checkpointed %d times", s.ckpt.hardRuns.Load())
	}
	if restarts < 10 {
		t.Errorf("the WAL started over %d times in 60 commits (most %d frames), want each time it passed 16", restarts, most)
	}
}

// TestCheckpointerDrainsInSteps: after a checkpoint that left the WAL
// unfinished, the checkpointer copies again once walDrainPages frames
// wait, not after every commit, until the WAL starts over; idle, it
// copies whatever waits.
func TestCheckpointerDrainsInSteps(t *testing.T) {
	c := &walCheckpointer{limit: 64, drain: 8}
	steps := []struct {
		frames, copied uint32
		idle, want     bool
		why            string
	}{
		{frames: 10, copied: 0, want: false, why: "10 frames wait, below the limit"},
		{frames: 10, copied: 0, idle: true, want: true, why: "idle: every frame is copied"},
		{frames: 70, copied: 0, want: true, why: "70 frames wait, past the limit of 64"},
		{frames: 75, copied: 70, want: false, why: "draining, 5 frames wait, below the drain of 8"},
		{frames: 78, copied: 70, want: true, why: "draining, 8 frames wait"},
		{frames: 80, copied: 78, want: false, why: "draining, 2 frames wait"},
		{frames: 80, copied: 78, idle: true, want: true, why: "draining and idle, 2 frames wait"},
		{frames: 12, copied: 0, want: false, why: "the WAL started over: no longer draining, 12 frames wait"},
		{frames: 12, copied: 12, idle: true, want: false, why: "idle, nothing waits"},
	}
	for i, st := range steps {
		got := c.due(st.frames, st.copied, st.idle)
		if got {
			c.draining = true // look's checkpoint
		}
		if got != st.want {
			t.Errorf("step %d (%s): due = %v, want %v", i, st.why, got, st.want)
		}
	}
}

// TestWALBoundedByTheWriter: commits back to back, with no pause for the
// checkpointer to catch up, still leave the WAL bounded by the writer's
// hard limit: the writer copies what is left and the WAL starts over with
// the next commit (of about 30 frames).
func TestWALBoundedByTheWriter(t *testing.T) {
	s := smallWAL(t, 64)
	ctx := t.Context()
	// Open's migrations leave a WAL of their own (about 100 frames,
	// more with each migration), which the first commit adds to: the
	// bound is on what commits leave.
	s.checkpointWriter()
	most := uint32(0)
	for range 100 {
		if err := s.Commit(ctx, fewPages(t, s, 4)); err != nil {
			t.Fatal(err)
		}
		frames, _ := walFrames(t, s)
		most = max(most, frames)
	}
	if s.ckpt.hardRuns.Load() == 0 {
		t.Error("the writer never checkpointed itself")
	}
	if most > 64+2*30 {
		t.Errorf("the WAL grew to %d frames past a hard limit of 64", most)
	}
}

// TestCheckpointerCrash: a process killed at a random moment while it
// commits (and the checkpointer copies beside it) loses no commit it was
// told of, and leaves a store that opens and checks clean.
func TestCheckpointerCrash(t *testing.T) {
	if path := os.Getenv("NHISYNC_SQLITE_CRASH_CHILD"); path != "" {
		crashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("runs and kills child processes")
	}
	for round := range 3 {
		path := filepath.Join(t.TempDir(), "crash.db")
		cmd := exec.Command(os.Args[0], "-test.run", "^TestCheckpointerCrash$")
		cmd.Env = append(os.Environ(), "NHISYNC_SQLITE_CRASH_CHILD="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked, killAt := 0, 20+rand.IntN(120)
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(lines.Text(), "committed ")); err == nil {
				acked = n
			}
			if acked >= killAt {
				break
			}
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if acked < killAt {
			t.Fatalf("round %d: the child stopped after %d commits", round, acked)
		}
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("round %d: reopen after the kill: %v", round, err)
		}
		v, err := s.Meta(t.Context(), "n")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(v); n < acked {
			t.Errorf("round %d: commit %s survived the kill, but %d were acknowledged", round, v, acked)
		}
		var records int
		if err := s.r.QueryRow(`SELECT count(*) FROM records`).Scan(&records); err != nil || records < 4*acked {
			t.Errorf("round %d: %d records after the kill, want at least %d (%v)", round, records, 4*acked, err)
		}
		var ok string
		if err := s.r.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Errorf("round %d: integrity_check = %q, %v", round, ok, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// crashChild commits until killed, saying each commit once Commit returns,
// with a checkpointer that copies every 16 frames and a writer that never
// does.
func crashChild(path string) {
	walCheckpointPages, walHardLimitPages = 16, 1<<30
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for n := 1; ; n++ {
		first, err := s.NewIDs(ctx, 4)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		b := &nhisync.Batch{Meta: map[string]string{"n": strconv.Itoa(n)}}
		for i := range 4 {
			id := first + int64(i)
			name := fmt.Sprintf("svc-%d-%s", id, strings.Repeat("x", 3000))
			b.Records = append(b.Records, &nhisync.Record{ID: id, Kind: "service_account", Key: "aws/" + name, MatchKey: "aws\x00" + name})
		}
		if err := s.Commit(ctx, b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", n)
	}
}

// TestCheckpointFailureReported: a background checkpoint that fails is
// counted and its message kept (WALStatus), where the service's metrics
// and log find it; it is no commit's error.
func TestCheckpointFailureReported(t *testing.T) {
	s := openTest(t)
	if err := s.Commit(t.Context(), fewPages(t, s, 4)); err != nil {
		t.Fatal(err)
	}
	st := s.WALStatus()
	if st.Frames == 0 || st.Failures != 0 || st.LastError != "" {
		t.Fatalf("after a commit: %+v, want frames and no failure", st)
	}
	// The checkpointer's connection gone: its next checkpoint fails.
	if err := s.ckpt.db.Close(); err != nil {
		t.Fatal(err)
	}
	s.ckpt.checkpoint()
	st = s.WALStatus()
	if st.Failures < 1 || !strings.Contains(st.LastError, "checkpointing the write-ahead log") {
		t.Fatalf("after a failed checkpoint: %+v, want it counted with its message", st)
	}
	if err := s.Commit(t.Context(), fewPages(t, s, 1)); err != nil {
		t.Fatalf("a commit after a failed checkpoint: %v", err)
	}
}
