package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nhisync/nhisync"
)

// Checkpoints: copying the WAL back into the database. SQLite's own
// (wal_autocheckpoint) runs inside the commit that crosses the limit, on
// the committing goroutine: a pread from the WAL and a pwrite to the
// database for every page, then fsyncs, while the next batch waits. Here
// a checkpointer goroutine on a connection of its own does it instead,
// with PRAGMA wal_checkpoint(PASSIVE), which waits for nobody: the writer
// appends frames while the other core copies the earlier ones back.
//
// It runs when walCheckpointPages frames wait to be copied (read from the
// wal-index, the -shm file, whose header SQLite documents), and when the
// writer has been idle for idleCheckpoint. A WAL starts over from its
// first frame only when a writer begins while every frame is copied; a
// checkpoint that ran beside commits leaves the frames those added, so
// after one the checkpointer keeps copying, each time walDrainPages frames
// wait, until the WAL has started over. The bound is the writer's: once
// the WAL holds walHardLimitPages frames (twice the checkpointer's limit;
// reached only when the checkpointer falls behind, commits come back to
// back, or a reader holds old frames) the committing goroutine checkpoints
// itself with wal_checkpoint(RESTART) after its commit: it copies what is
// left, waits for the readers of old frames, and the next commit starts
// the WAL over. SQLite's wal_autocheckpoint stays on, at twice that, should
// the wal-index be unreadable.
//
// Durability is unchanged: a commit is durable once its frames are in the
// WAL and fsynced (synchronous=FULL on the writer; inside the bulk window
// once it closes, bulk.go); a checkpoint only copies committed frames,
// fsyncing the WAL before and the database after (synchronous=FULL on its
// connection too), and a process dying inside one leaves the frames in
// the WAL, from which the next open reads them.

// walIndexVersion is the wal-index format SQLite 3.7.0 on writes.
const walIndexVersion = 3007000

// walCheckpointer copies the WAL back into the database in the background.
type walCheckpointer struct {
	db    *sql.DB // its own connection
	shm   string  // the wal-index file
	limit uint32  // walCheckpointPages
	drain uint32  // walDrainPages
	hard  uint32  // walHardLimitPages
	// kick asks for a look after a commit (false) or when the writer is
	// idle (true).
	kick chan bool
	stop chan struct{}
	done chan struct{}

	// Owned by run.
	f        *os.File
	draining bool   // copying each time drain frames wait, until the WAL starts over
	lastMax  uint32 // frames in the WAL at the last look

	// runs and hardRuns count the checkpoints run here and by the writer,
	// failures those that failed (WALStatus); lastErr is the last failure.
	runs, hardRuns, failures atomic.Int64
	lastErr                  atomic.Pointer[string]
	// mu guards f: the writer reads the wal-index too.
	mu sync.Mutex
	// paused is set while a bulk window runs without a WAL
	// (bulkjournal.go): the checkpointer's connection is closed, and it
	// looks at nothing until resumed. runMu is held by a look, so that
	// pause waits for one running.
	runMu  sync.Mutex
	paused atomic.Bool
}

// startCheckpointer opens the checkpointer's connection to the database
// at uri and starts it.
func startCheckpointer(uri, path string) (*walCheckpointer, error) {
	// Through walBufVFS for its checkpoints' read-ahead (walckpt.go).
	db, err := sql.Open("sqlite", uri+"?vfs="+walBufVFS+"&"+commonPragmas(busyTimeout)+"&_pragma=cache_size(-512)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	c := &walCheckpointer{db: db, shm: path + "-shm", limit: uint32(walCheckpointPages), drain: uint32(walDrainPages()), hard: uint32(walHardLimitPages), kick: make(chan bool, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *walCheckpointer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case idle := <-c.kick:
			c.look(idle)
		}
	}
}

// look checkpoints when enough frames wait, while draining, or when idle.
func (c *walCheckpointer) look(idle bool) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.paused.Load() {
		return
	}
	frames, copied, ok := c.walIndex()
	if !ok {
		if idle {
			c.checkpoint()
		}
		return
	}
	if c.due(frames, copied, idle) {
		c.checkpoint()
		c.draining = true
	}
}

// due says whether a look that found frames in the WAL, copied of them
// copied back, checkpoints: when limit frames wait, when drain frames
// wait after a checkpoint that left the WAL unfinished (draining), and
// when any wait and the writer is idle.
func (c *walCheckpointer) due(frames, copied uint32, idle bool) bool {
	if frames < c.lastMax {
		c.draining = false // the WAL started over
	}
	c.lastMax = frames
	waiting := uint32(0)
	if frames > copied {
		waiting = frames - copied
	}
	switch {
	case waiting >= c.limit:
	case waiting >= max(c.drain, 1) && c.draining:
	case waiting > 0 && idle:
	default:
		return false
	}
	return true
}

// checkpoint runs one PASSIVE checkpoint; a failure leaves the frames to
// the next one, and is counted (WALStatus). A reader holding old frames is
// no failure: PASSIVE copies what it can.
func (c *walCheckpointer) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var busy, log, done int64
	if err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil {
		c.failed(err)
		return
	}
	c.runs.Add(1)
}

// failed counts a failed checkpoint and keeps its message.
func (c *walCheckpointer) failed(err error) {
	msg := "checkpointing the write-ahead log: " + err.Error()
	c.lastErr.Store(&msg)
	c.failures.Add(1)
}

// WALStatus reports the write-ahead log's size and the checkpoints run
// since the store opened (nhisync.WALReporter).
func (s *Store) WALStatus() nhisync.WALStatus {
	if s.ckpt == nil {
		return nhisync.WALStatus{}
	}
	st := nhisync.WALStatus{
		Checkpoints: s.ckpt.runs.Load() + s.ckpt.hardRuns.Load(),
		Failures:    s.ckpt.failures.Load(),
	}
	if frames, _, ok := s.ckpt.walIndex(); ok {
		st.Frames = int64(frames)
	}
	if msg := s.ckpt.lastErr.Load(); msg != nil {
		st.LastError = *msg
	}
	return st
}

// walIndex reads how many frames the WAL holds and how many of them are
// copied back (mxFrame at offset 16 of the wal-index header, nBackfill at
// offset 96, in native byte order: sqlite.org/walformat.html).
func (c *walCheckpointer) walIndex() (frames, copied uint32, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused.Load() {
		return 0, 0, false // no WAL: a stale wal-index must not be read
	}
	if c.f == nil {
		f, err := os.Open(c.shm)
		if err != nil {
			return 0, 0, false
		}
		c.f = f
	}
	var hdr [136]byte
	if _, err := c.f.ReadAt(hdr[:], 0); err != nil {
		return 0, 0, false
	}
	if binary.NativeEndian.Uint32(hdr[0:]) != walIndexVersion {
		return 0, 0, false
	}
	return binary.NativeEndian.Uint32(hdr[16:]), binary.NativeEndian.Uint32(hdr[96:]), true
}

// pause stops the checkpointer's looks (one running ends first) and
// closes its connection and its handle on the wal-index, which leaving
// WAL mode may remove: resume opens both again.
func (c *walCheckpointer) pause() {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	c.paused.Store(true)
	c.db.SetMaxIdleConns(0)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
	c.draining, c.lastMax = false, 0
}

// resume undoes pause.
func (c *walCheckpointer) resume() {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	c.db.SetMaxIdleConns(1)
	c.paused.Store(false)
}

// close stops the checkpointer (one running finishes first) and closes
// its connection.
func (c *walCheckpointer) close() error {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f != nil {
		c.f.Close()
	}
	return c.db.Close()
}

// commitDone follows every commit: past walHardLimitPages frames the
// writer checkpoints itself, otherwise the checkpointer looks at the WAL;
// idleCheckpoint after the last commit it copies whatever is left.
func (s *Store) commitDone() {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if s.closed || s.ckpt == nil || s.ckpt.paused.Load() {
		return
	}
	if frames, _, ok := s.ckpt.walIndex(); ok && frames >= s.ckpt.hard {
		s.checkpointWriter()
	}
	select {
	case s.ckpt.kick <- false:
	default: // a look is pending already
	}
	s.resetIdle()
}

// idleFromNow restarts the idle clock (idleCheckpoint) without a commit:
// the writer mapped the file (writermap.go).
func (s *Store) idleFromNow() {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if s.closed || s.ckpt == nil {
		return
	}
	s.resetIdle()
}

// resetIdle starts or restarts the idle timer; s.idleMu held.
func (s *Store) resetIdle() {
	if s.idle == nil {
		s.idle = time.AfterFunc(idleCheckpoint, s.checkpointIdle)
		return
	}
	s.idle.Reset(idleCheckpoint)
}

// checkpointWriter copies the whole WAL back on the writer's connection
// and waits (busy_timeout) for readers of old frames, so that the next
// commit starts the WAL over (wal_checkpoint(RESTART)). SQLite does not
// wait for another checkpoint, so it waits here for the checkpointer's to
// end. It failing leaves the WAL to the next commit.
func (s *Store) checkpointWriter() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var busy, log, done int64
		if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &log, &done); err != nil {
			s.ckpt.failed(err)
			return
		}
		if log >= 0 { // log -1: another checkpoint holds the WAL
			s.ckpt.hardRuns.Add(1)
			return
		}
		select {
		case <-ctx.Done():
			s.ckpt.failed(ctx.Err())
			return
		case <-time.After(wait):
		}
	}
}

func (s *Store) checkpointIdle() {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if s.closed {
		return
	}
	// Replaces a pending look after a commit: idle is the larger ask.
	select {
	case <-s.ckpt.kick:
	default:
	}
	s.ckpt.kick <- true
	if s.writerMapped.Load() {
		go s.unmapIdleWriter()
	}
}

// stopCheckpoints stops the idle timer and the checkpointer once the store
// closes (a checkpoint running finishes first).
func (s *Store) stopCheckpoints() error {
	s.idleMu.Lock()
	s.closed = true
	if s.idle != nil {
		s.idle.Stop()
	}
	s.idleMu.Unlock()
	if s.ckpt == nil {
		return nil
	}
	return s.ckpt.close()
}
