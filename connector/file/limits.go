package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"
	"github.com/nhisync/nhisync"
)

// Defaults of the limit settings. A file of governance records is
// megabytes; the limits only stop a runaway (a path pointing at a log, a
// device, an export gone wrong) before it eats the machine.
const (
	DefaultMaxBytes      = 512 << 20 // max_bytes: 512 MiB
	DefaultMaxValueBytes = 64 << 10  // max_value_bytes: 64 KiB per value
)

// byteSize reads a size setting: a number of bytes or text such as
// "64MiB" or "1 GB". It returns an error naming the setting.
func byteSize(s nhisync.Settings, key string, def int64) (int64, error) {
	switch v := s[key].(type) {
	case nil:
		return def, nil
	case int:
		if v > 0 {
			return int64(v), nil
		}
	case string:
		if n, err := humanize.ParseBytes(v); err == nil && n > 0 && n < 1<<62 {
			return int64(n), nil
		}
	}
	return 0, fmt.Errorf("set %s to a positive size, in bytes or as text such as %q (got %v)", key, strings.ReplaceAll(humanize.IBytes(uint64(def)), " ", ""), s[key])
}

// openRegular opens path for reading without blocking on a FIFO and
// refuses anything but a regular file no larger than the limit. It returns
// the file and what fstat said of it.
func (c *Connector) openRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, c.openError(err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, c.openError(err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, nil, c.errorf(nhisync.EINVALID, "%s is not a regular file (it is %s); point path at the file holding the records", c.sys.Settings.String(SettingPath), fileKind(info.Mode()))
	}
	if info.Size() > c.maxBytes {
		f.Close()
		return nil, nil, c.tooBig(info.Size())
	}
	return f, info, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

func (c *Connector) tooBig(size int64) error {
	return c.errorf(nhisync.EINVALID, "%s is larger than %s (max_bytes); raise max_bytes if the file is meant to be this big", c.sys.Settings.String(SettingPath), humanize.IBytes(uint64(c.maxBytes)))
}

// errTooBig: the file grew past max_bytes while it was read.
var errTooBig = errors.New("file larger than max_bytes")

// guardedReader reads a file for a snapshot or a rewrite: it stops at the
// size limit, answers a cancelled context at the next read (so SIGINT or
// SIGTERM stops a pass within one buffer), and hashes what it reads with
// the content hash (contentsum.go): a snapshot's settled check, like a
// rewrite's, only compares two reads of one process.
type guardedReader struct {
	ctx  context.Context
	r    io.Reader
	h    *maphash.Hash
	left int64
	last byte // the last byte read, to tell a torn last line
}

// newGuardedReader returns a guardedReader of r that reads at most limit
// bytes.
func newGuardedReader(ctx context.Context, r io.Reader, limit int64) *guardedReader {
	return &guardedReader{ctx: ctx, r: r, h: contentHash(), left: limit}
}

func (g *guardedReader) Read(p []byte) (int, error) {
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	if g.left <= 0 {
		// One byte more tells a file of exactly the limit from a bigger one.
		var one [1]byte
		if n, _ := g.r.Read(one[:]); n > 0 {
			return 0, errTooBig
		}
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.r.Read(p)
	if n > 0 {
		g.h.Write(p[:n])
		g.left -= int64(n)
		g.last = p[n-1]
	}
	return n, err
}

// readAll reads a whole file for a rewrite, with the checks of a snapshot,
// and returns it with its content hash.
func (c *Connector) readAll(ctx context.Context, path string) ([]byte, fileSum, fs.FileInfo, error) {
	f, info, err := c.openRegular(path)
	if err != nil {
		return nil, fileSum{}, nil, err
	}
	defer f.Close()
	g := newGuardedReader(ctx, f, c.maxBytes)
	var b bytes.Buffer
	b.Grow(int(info.Size()) + 512)
	if _, err := b.ReadFrom(g); err != nil {
		return nil, fileSum{}, nil, c.guardError(err)
	}
	return b.Bytes(), g.sum(), info, nil
}

// guardError names a limit the read hit; other errors pass unchanged.
func (c *Connector) guardError(err error) error {
	if errors.Is(err, errTooBig) {
		return c.tooBig(c.maxBytes + 1)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return c.openError(err)
	}
	return err
}

// settled checks that the file read through g (opened as f, with info
// before the read) did not change while it was read: same size and
// modification time before and after, the path still the same file, and
// a second read of it a moment later hashing the same. A file an export
// tool is still writing fails with EUNAVAIL naming it, and the engine
// leaves the system unread this pass (SPEC §3 rule 13).
func (c *Connector) settled(ctx context.Context, f *os.File, before fs.FileInfo, g *guardedReader) error {
	// What the format did not consume still belongs to the hash.
	if _, err := io.Copy(io.Discard, g); err != nil {
		return c.guardError(err)
	}
	changing := func(what string) error {
		return c.errorf(nhisync.EUNAVAIL, "%s changed while it was read (%s): it is being written; not read this pass, try again when the writer has finished", c.sys.Settings.String(SettingPath), what)
	}
	after, err := f.Stat()
	if err != nil {
		return c.openError(err)
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return changing("its size or modification time moved")
	}
	now, err := os.Stat(c.path)
	if err != nil {
		return c.openError(err)
	}
	if !os.SameFile(now, after) {
		return changing("another file replaced it")
	}
	sum := g.sum()
	f2, _, err := c.openRegular(c.path)
	if err != nil {
		return err
	}
	defer f2.Close()
	g2 := newGuardedReader(ctx, f2, c.maxBytes)
	if _, err := io.Copy(io.Discard, g2); err != nil {
		return c.guardError(err)
	}
	if g2.sum() != sum {
		return changing("two reads a moment apart differ")
	}
	return nil
}
