// Package file owns the `file` connector: systems that are CSV, JSON,
// JSONL or YAML files (exports, registers, catalogs). It streams records
// out of a file and applies conditional writes by rewriting the file
// atomically (temp file in the same directory, fsync, rename), keeping
// every column and key it does not map, key order, YAML comments and row
// order.
//
// Settings: `path` (required; relative to the config's directory),
// `format` (csv | json | jsonl | yaml; default from the extension: .csv,
// .json, .jsonl, .yaml, .yml), `max_bytes` (the largest file read;
// default 512MiB), `max_value_bytes` (the largest value; default 64KiB,
// a longer one is quarantined) and `csv_formula_guard` (default true:
// cells nhisync writes that would start a spreadsheet formula get a '
// prefix, read back as the value without it).
//
// What is read is what the file says, or nothing: only a regular file is
// read (not a FIFO or a device), a file that changes while it is read is
// left for the next pass, and a value that is not one (a CSV row cut
// short, an object where text belongs, a key given twice, invalid UTF-8,
// a NUL byte) reads as nhisync.Malformed, which validation quarantines.
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
	SettingPath          = "path"
	SettingFormat        = "format"
	SettingMaxBytes      = "max_bytes"
	SettingMaxValueBytes = "max_value_bytes"
	SettingFormulaGuard  = "csv_formula_guard"
)

func init() {
	nhisync.RegisterDriver("file", nhisync.Driver{
		Settings: []string{SettingPath, SettingFormat, SettingMaxBytes, SettingMaxValueBytes, SettingFormulaGuard},
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
	// maxBytes and maxValue are the size limits (max_bytes,
	// max_value_bytes).
	maxBytes int64
	maxValue int
	// Rand makes ids of created records (crypto/rand by default).
	Rand io.Reader

	mu sync.Mutex
	// beforeCheck, when set, runs before a rewrite checks that the file is
	// still the one read (tests use it to change the file under a write).
	beforeCheck func()
	// beforeSwap, when set, runs after that check, just before the new
	// file is swapped in (tests use it to land an edit in that window).
	beforeSwap func()
	// contentChecks counts the whole-file content checks of rewrites
	// (holds), under mu: tests tell how often a rewrite reads the file.
	contentChecks int
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
	var err error
	p := strings.TrimSpace(sys.Settings.String(SettingPath))
	if p == "" {
		return nil, c.errorf(nhisync.EINVALID, "set path: the file holding the records (.csv, .json, .jsonl, .yaml)")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(sys.BaseDir, p)
	}
	c.path = p
	c.format, err = formatFor(sys.Settings.String(SettingFormat), p)
	if err != nil {
		return nil, c.errorf(nhisync.EINVALID, "%v", err)
	}
	if c.maxBytes, err = byteSize(sys.Settings, SettingMaxBytes, DefaultMaxBytes); err != nil {
		return nil, c.errorf(nhisync.EINVALID, "%v", err)
	}
	mv, err := byteSize(sys.Settings, SettingMaxValueBytes, DefaultMaxValueBytes)
	if err != nil {
		return nil, c.errorf(nhisync.EINVALID, "%v", err)
	}
	c.maxValue = int(min(mv, 1<<30))
	guard := true
	switch v := sys.Settings[SettingFormulaGuard].(type) {
	case nil:
	case bool:
		guard = v
	default:
		return nil, c.errorf(nhisync.EINVALID, "set %s to true or false (got %v)", SettingFormulaGuard, v)
	}
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
	if cf, ok := c.format.(csvFormat); ok {
		cf.guard = guard
		cf.need = c.neededColumns()
		c.format = cf
	}
	return c, nil
}

// neededColumns lists the CSV columns a header must have: the id, and
// every field nhisync reads (a write-only column is added on first write).
func (c *Connector) neededColumns() []column {
	var need []column
	seen := map[string]bool{}
	add := func(name, what string, id bool) {
		if !seen[name] {
			seen[name] = true
			need = append(need, column{name: name, what: what, id: id})
		}
	}
	if c.id != nil {
		add(c.id.name, "the id", true)
	}
	for _, k := range c.match {
		add(c.fields[k].name, "match field "+c.fields[k].m.Field+", part of the id", true)
	}
	if c.sys.Direction.Reads() {
		for _, fd := range c.fields {
			if fd.m.Direction.Reads() {
				add(fd.name, "mapped to "+fd.m.Field, false)
			}
		}
	}
	return need
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
// or unreadable file, or one that changed while it was read, returns
// *nhisync.Error EUNAVAIL (never "no records"); a malformed one, one over
// max_bytes or one that is not a regular file EINVALID naming the line or
// the limit. A cancelled ctx stops the read at the next buffer.
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, info, err := c.openRegular(c.path)
	if err != nil {
		return err
	}
	defer f.Close()
	g := newGuardedReader(ctx, f, c.maxBytes)
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.fields))}
	n := 0
	err = c.format.scan(g, func(r row) error {
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
	if err == nil {
		err = c.settled(ctx, f, info, g)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.readError(c.guardError(err))
}

func (c *Connector) openError(err error) error {
	if os.IsNotExist(err) {
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: file %s does not exist", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
	}
	return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot read %s", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
}

// observe fills obs from a record and reports false for a record without
// an id. A record whose row is malformed (a CSV row cut short) reads with
// every field Malformed; a value over max_value_bytes reads as Malformed.
func (c *Connector) observe(r row, obs *nhisync.Observation) (bool, error) {
	if err := c.idProblem(r); err != nil {
		return false, err
	}
	obs.ID = c.idOf(r)
	if obs.ID == "" {
		return false, nil
	}
	problem := ""
	if m, ok := r.(interface{ malformed() string }); ok {
		problem = m.malformed()
	}
	for i := range c.fields {
		fd := &c.fields[i]
		if !fd.m.Direction.Reads() {
			obs.Values[i] = nhisync.Value{}
			continue
		}
		if problem != "" {
			obs.Values[i] = nhisync.Malformed(problem)
			continue
		}
		v, err := decode(r, fd)
		if err != nil {
			return false, c.errorf(nhisync.EINVALID, "record %s: %s", obs.ID, nhisync.ErrorMessage(err))
		}
		obs.Values[i] = native.Limit(v, c.maxValue)
	}
	return true, nil
}

// idProblem fails the read when a record's id cannot be told (its id key
// given twice): which record is meant is unknown, so none can be read.
func (c *Connector) idProblem(r row) error {
	check := func(fd *field) error {
		if _, tr := r.(textRow); tr {
			return nil
		}
		if v, _ := r.get(fd); v != nil {
			if inv, ok := v.(native.Invalid); ok {
				return &syntaxError{Msg: "a record's id cannot be read: " + inv.Reason}
			}
		}
		return nil
	}
	if c.id != nil {
		return check(c.id)
	}
	for _, k := range c.match {
		if err := check(&c.fields[k]); err != nil {
			return err
		}
	}
	return nil
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
	f, _, err := c.openRegular(c.path)
	if err != nil {
		return err
	}
	{
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
