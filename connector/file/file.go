// Package file owns the `file` connector: systems that are CSV, JSON,
// JSONL or YAML files (exports, registers, catalogs). It streams records
// out of a file and applies conditional writes by rewriting the file
// atomically (temp file in the same directory, fsync, rename), keeping
// every column and key it does not map, key order, YAML comments and row
// order.
//
// Settings: `path` (required; relative to the config's directory) and
// `format` (csv | json | jsonl | yaml; default from the extension: .csv,
// .json, .jsonl, .yaml, .yml).
//
// Ids: with `id` set, that native field holds each record's id; without
// it, the id is the mapped match fields' native values, trimmed, joined by
// "/" (kind order: match: [platform, name] gives aws/payments-bot). A file
// may hold an id twice: Snapshot emits both records (the engine reports
// the dispute) but writes to that id fail until the file is fixed, since
// nhisync cannot tell which one is meant.
//
// A record whose id is empty is skipped: it cannot be linked.
package file

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// Setting names of the file connector.
const (
	SettingPath   = "path"
	SettingFormat = "format"
)

func init() {
	nhisync.RegisterDriver("file", nhisync.Driver{
		Settings: []string{SettingPath, SettingFormat},
		Validate: Validate,
		Open: func(_ context.Context, sys *nhisync.System, kind *nhisync.Kind) (nhisync.Connector, error) {
			return New(sys, kind)
		},
	})
}

var (
	_ nhisync.Connector = (*Connector)(nil)
	_ nhisync.Checker   = (*Connector)(nil)
)

// Connector reads and writes one file. It is safe for concurrent use;
// writes from one Connector are serialized, and writes by anyone else are
// detected by the file's content hash.
type Connector struct {
	sys    *nhisync.System
	kind   *nhisync.Kind
	path   string
	format format
	// fields is aligned with sys.Fields; id is the id field (nil when the
	// id is the match fields); match indexes fields of mapped match fields.
	fields []field
	id     *field
	match  []int
	// Rand makes ids of created records (crypto/rand by default).
	Rand io.Reader

	mu sync.Mutex
	// beforeCheck, when set, runs before the content hash is re-checked
	// (tests use it to change the file under a write).
	beforeCheck func()
}

// field is one native field: a mapping (nil for the id field), its name
// and, for nested formats, its parsed path.
type field struct {
	m    *nhisync.Mapping
	name string
	path native.Path
}

// Validate checks a file system's settings without touching the file. It
// returns *nhisync.Error EINVALID naming the setting or mapping at fault.
func Validate(sys *nhisync.System, kind *nhisync.Kind) error {
	_, err := New(sys, kind)
	return err
}

// New returns a connector for sys without touching the file (a missing
// file is reported by Snapshot, Apply and Check). It returns
// *nhisync.Error EINVALID for bad settings.
func New(sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	c := &Connector{sys: sys, kind: kind, Rand: rand.Reader}
	p := strings.TrimSpace(sys.Settings.String(SettingPath))
	if p == "" {
		return nil, c.errorf(nhisync.EINVALID, "set path: the file holding the records (.csv, .json, .jsonl, .yaml)")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(sys.BaseDir, p)
	}
	c.path = p
	f, err := formatFor(sys.Settings.String(SettingFormat), p)
	if err != nil {
		return nil, c.errorf(nhisync.EINVALID, "%v", err)
	}
	c.format = f
	for _, m := range sys.Fields {
		fd, err := c.newField(m, m.Name)
		if err != nil {
			return nil, err
		}
		c.fields = append(c.fields, fd)
	}
	if sys.ID != "" {
		fd, err := c.newField(nil, sys.ID)
		if err != nil {
			return nil, err
		}
		c.id = &fd
	} else {
		for _, mf := range kind.Match {
			for i, m := range sys.Fields {
				if m.Field == mf {
					c.match = append(c.match, i)
				}
			}
		}
		if len(c.match) == 0 {
			return nil, c.errorf(nhisync.EINVALID, "set id (the field holding each record's id) or map a match field (%s): records need an id", strings.Join(kind.Match, ", "))
		}
	}
	return c, nil
}

func (c *Connector) newField(m *nhisync.Mapping, name string) (field, error) {
	fd := field{m: m, name: name}
	if c.format.nested() {
		p, err := native.ParsePath(name)
		if err != nil {
			what := "id"
			if m != nil {
				what = "field " + m.Field
			}
			return field{}, c.errorf(nhisync.EINVALID, "%s: %s", what, nhisync.ErrorMessage(err))
		}
		fd.path = p
	}
	return fd, nil
}

// errorf returns an *nhisync.Error whose message names the system.
func (c *Connector) errorf(code, format string, args ...any) *nhisync.Error {
	return &nhisync.Error{Code: code, Message: fmt.Sprintf("system %s: ", c.sys.Name) + fmt.Sprintf(format, args...)}
}

// Close releases nothing: the connector holds no open file between calls.
func (c *Connector) Close() error { return nil }

// Snapshot streams every record of the file, in file order. CSV and JSONL
// are read incrementally; JSON and YAML files are parsed whole. A missing
// or unreadable file returns *nhisync.Error EUNAVAIL (never "no records");
// a malformed one EINVALID naming the line.
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(c.path)
	if err != nil {
		return c.openError(err)
	}
	defer f.Close()
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.fields))}
	n := 0
	err = c.format.scan(f, c.fields, func(r row) error {
		if n++; n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ok, err := c.observe(r, &obs)
		if err != nil || !ok {
			return err
		}
		return emit(obs)
	})
	return c.readError(err)
}

func (c *Connector) openError(err error) error {
	if os.IsNotExist(err) {
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: file %s does not exist", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
	}
	return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot read %s", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
}

// observe fills obs from a record and reports false for a record without
// an id.
func (c *Connector) observe(r row, obs *nhisync.Observation) (bool, error) {
	obs.ID = c.idOf(r)
	if obs.ID == "" {
		return false, nil
	}
	for i := range c.fields {
		fd := &c.fields[i]
		if !fd.m.Direction.Reads() {
			obs.Values[i] = nhisync.Value{}
			continue
		}
		v, err := decode(r, fd)
		if err != nil {
			return false, c.errorf(nhisync.EINVALID, "record %s: %s", obs.ID, nhisync.ErrorMessage(err))
		}
		obs.Values[i] = v
	}
	return true, nil
}

func decode(r row, fd *field) (nhisync.Value, error) {
	if tr, ok := r.(textRow); ok {
		return native.DecodeText(tr.text(fd), fd.m)
	}
	v, _ := r.get(fd)
	return native.Decode(v, fd.m)
}

// idOf returns a record's id: its id field, or its match fields joined.
func (c *Connector) idOf(r row) string {
	if c.id != nil {
		return strings.TrimSpace(rowText(r, c.id))
	}
	if len(c.match) == 1 {
		return strings.TrimSpace(rowText(r, &c.fields[c.match[0]]))
	}
	var b strings.Builder
	empty := true
	for i, fi := range c.match {
		if i > 0 {
			b.WriteByte('/')
		}
		s := strings.TrimSpace(rowText(r, &c.fields[fi]))
		empty = empty && s == ""
		b.WriteString(s)
	}
	if empty {
		return ""
	}
	return b.String()
}

func rowText(r row, fd *field) string {
	if tr, ok := r.(textRow); ok {
		return tr.text(fd)
	}
	v, _ := r.get(fd)
	s, _ := native.Text(v)
	return s
}

// Check reports whether the file can be read and, when nhisync writes to
// the system, whether its directory takes new files (writes replace the
// file by renaming a temp file over it). It returns *nhisync.Error EUNAVAIL.
func (c *Connector) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(c.path)
	if err != nil {
		return c.openError(err)
	}
	info, err := f.Stat()
	if err == nil && info.IsDir() {
		err = fmt.Errorf("is a directory")
	}
	if err == nil {
		_, err = f.Read(make([]byte, 1))
		if err == io.EOF {
			err = nil
		}
	}
	f.Close()
	if err != nil {
		return c.openError(err)
	}
	if !c.sys.Direction.Writes() {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".nhisync-check-*")
	if err != nil {
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: the directory of %s does not take new files, so writes cannot replace the file", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}
