package file

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nhisync/nhisync"
)

var _ nhisync.Watcher = (*Connector)(nil)

// Feed timing. A feed is real time by nature, so these are wall-clock
// waits; what a pass decides never depends on them.
var (
	// watchQuiet is how long the file must see no event before it is read.
	watchQuiet = 150 * time.Millisecond
	// watchSettle is the wait between the two reads whose hashes must
	// agree: a file still being written is never reported half-written.
	watchSettle = 100 * time.Millisecond
)

// Watch reports changes of the file (SPEC §5: content hash / fsnotify). It
// watches the file's directory, since writers (nhisync included) replace
// files by rename; after an event it waits for quiet, then for the
// content hash to hold still across two reads, and calls changed(nil) when
// that hash differs from the last one reported. A vanished file is
// reported too (the pass then says it cannot read it).
func (c *Connector) Watch(ctx context.Context, changed func(ids []string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return c.errorf(nhisync.EUNAVAIL, "cannot watch its file: %v", err)
	}
	defer w.Close()
	dir, base := filepath.Dir(c.path), filepath.Base(c.path)
	if err := w.Add(dir); err != nil {
		return c.errorf(nhisync.EUNAVAIL, "cannot watch the directory of its file: %v", err)
	}
	last, _ := c.hashFile()
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			return c.errorf(nhisync.EUNAVAIL, "watching its file failed: %v", err)
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Base(ev.Name) == base {
				quiet.Reset(watchQuiet)
			}
		case <-quiet.C:
			h, ok := c.stableHash(ctx)
			if !ok {
				// Still changing: look again after another quiet spell.
				quiet.Reset(watchQuiet)
				continue
			}
			if h != last {
				last = h
				changed(nil)
			}
		}
	}
}

// stableHash hashes the file twice, watchSettle apart; ok is false when
// the two differ (a writer is still at work).
func (c *Connector) stableHash(ctx context.Context) (string, bool) {
	h1, _ := c.hashFile()
	t := time.NewTimer(watchSettle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "", false
	case <-t.C:
	}
	h2, _ := c.hashFile()
	return h2, h1 == h2
}

// hashFile returns the SHA-256 of the file's content ("gone" when it does
// not exist). Like a snapshot it opens only a regular file, without
// blocking on a FIFO, and reads at most max_bytes: a path that became a
// device or a pipe is "unreadable", never a watcher stuck or spinning.
func (c *Connector) hashFile() (string, error) {
	f, _, err := c.openRegular(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "gone", nil
	}
	if err != nil {
		return "unreadable", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, c.maxBytes+1)); err != nil {
		return "unreadable", err
	}
	return string(h.Sum(nil)), nil
}
