// Package storecodec is the byte format both stores (sqlite, postgres)
// keep records' and links' state in, and their text form of times: one
// implementation, so a workspace copied between them holds the same bytes.
package storecodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nhisync/nhisync"
)

// timeLayout is how time columns are stored: RFC 3339 in UTC with a fixed
// nine-digit fraction, so that text order is time order (next_at, lease
// expiry) and every nanosecond survives. The zero time is stored as
// 0001-01-01T00:00:00.000000000Z and reads back as the zero time.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// FormatTime returns the stored form of t.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// ParseTime reads a stored time back, in UTC.
func ParseTime(s string) (time.Time, error) {
	return time.Parse(timeLayout, s)
}

// SetTime parses a stored time into dst.
func SetTime(dst *time.Time, s string) error {
	t, err := ParseTime(s)
	*dst = t
	return err
}

// The state columns of the two hot tables, records.state and links.state,
// hold a compact binary encoding rather than JSON: a pass commits a
// million of each and a drift pass loads tens of thousands, and JSON made
// both rows three times larger and decoding ten times slower. No query
// looks inside them; every column a query filters on is a column.
//
// Both start with a format version byte. Then, with strings and counts
// as uvarint length + bytes, times as a presence byte (0 zero, 1 set)
// followed by varint Unix seconds and uvarint nanoseconds, and values as a
// tag (0 none, 1 scalar + string, 2 set + count + strings):
//
//	record: version, created, updated, count, then per field in name order:
//	        name, flags (1 nil, 2 actor, 4 source time), value, source,
//	        rule, at, [actor], [source time]
//	link:   version, first seen, seen at, gone at, modified, count, then per
//	        field in name order: name, flags (1 nil, 2 asserted equals shadow,
//	        4 since, 8 source time, 16 actor, 32 report), shadow, [asserted],
//	        [since], [source time], [actor], [report]
//
// A FieldState.Report pointing at a zero Value keeps its flag, so it reads
// back as a non-nil pointer to the zero Value: "refused against an empty
// golden value" survives.
const stateVersion = 1

const (
	gNil = 1 << iota
	gActor
	gSourceTime
)

const (
	fNil = 1 << iota
	fSame
	fSince
	fSourceTime
	fActor
	fReport
)

// AppendRecord appends the state of r.
func AppendRecord(b []byte, r *nhisync.Record) []byte {
	b = append(b, stateVersion)
	b = appendTime(b, r.Created)
	b = appendTime(b, r.Updated)
	b = binary.AppendUvarint(b, uint64(len(r.Fields)))
	for _, name := range SortedKeys(r.Fields) {
		b = appendStr(b, name)
		g := r.Fields[name]
		if g == nil {
			b = append(b, gNil)
			continue
		}
		var flags byte
		if g.Actor != "" {
			flags |= gActor
		}
		if !g.SourceTime.IsZero() {
			flags |= gSourceTime
		}
		b = append(b, flags)
		b = appendValue(b, g.Value)
		b = appendStr(b, g.Source)
		b = appendStr(b, g.Rule)
		b = appendTime(b, g.At)
		if flags&gActor != 0 {
			b = appendStr(b, g.Actor)
		}
		if flags&gSourceTime != 0 {
			b = appendTime(b, g.SourceTime)
		}
	}
	return b
}

// AppendLink appends the state of l.
func AppendLink(b []byte, l *nhisync.Link) []byte {
	b = append(b, stateVersion)
	b = appendTime(b, l.FirstSeen)
	b = appendTime(b, l.SeenAt)
	b = appendTime(b, l.GoneAt)
	b = appendTime(b, l.Modified)
	b = binary.AppendUvarint(b, uint64(len(l.Fields)))
	for _, name := range SortedKeys(l.Fields) {
		b = appendStr(b, name)
		fs := l.Fields[name]
		if fs == nil {
			b = append(b, fNil)
			continue
		}
		var flags byte
		if fs.Asserted.Equal(fs.Shadow) {
			flags |= fSame
		}
		if !fs.Since.IsZero() {
			flags |= fSince
		}
		if !fs.SourceTime.IsZero() {
			flags |= fSourceTime
		}
		if fs.Actor != "" {
			flags |= fActor
		}
		if fs.Report != nil {
			flags |= fReport
		}
		b = append(b, flags)
		b = appendValue(b, fs.Shadow)
		if flags&fSame == 0 {
			b = appendValue(b, fs.Asserted)
		}
		if flags&fSince != 0 {
			b = appendTime(b, fs.Since)
		}
		if flags&fSourceTime != 0 {
			b = appendTime(b, fs.SourceTime)
		}
		if flags&fActor != 0 {
			b = appendStr(b, fs.Actor)
		}
		if flags&fReport != 0 {
			b = appendValue(b, *fs.Report)
		}
	}
	return b
}

func SortedKeys[V any](m map[string]V) []string {
	if len(m) == 1 {
		for k := range m {
			return []string{k}
		}
	}
	return slices.Sorted(maps.Keys(m))
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendValue(b []byte, v nhisync.Value) []byte {
	switch {
	case v.IsZero():
		return append(b, 0)
	case v.IsSet():
		b = append(b, 2)
		b = binary.AppendUvarint(b, uint64(len(v.Elems())))
		for _, e := range v.Elems() {
			b = appendStr(b, e)
		}
		return b
	default:
		b = append(b, 1)
		return appendStr(b, v.Text())
	}
}

// ErrCorrupt reports a state blob that does not decode.
var ErrCorrupt = errors.New("state does not decode")

// Decoder reads state blobs. It interns field names (a store holds a few
// dozen distinct ones), so it is reused across the rows of a query.
type Decoder struct {
	b     []byte
	err   error
	names map[string]string
}

func (d *Decoder) reset(b []byte) error {
	d.b, d.err = b, nil
	if len(b) == 0 || b[0] != stateVersion {
		return fmt.Errorf("%w: unknown format version", ErrCorrupt)
	}
	d.b = b[1:]
	return nil
}

func (d *Decoder) fail() {
	if d.err == nil {
		d.err = ErrCorrupt
	}
	d.b = nil
}

func (d *Decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *Decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *Decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *Decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *Decoder) str() string { return string(d.bytes()) }

// name returns an interned field name.
func (d *Decoder) name() string {
	b := d.bytes()
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if d.names == nil {
		d.names = map[string]string{}
	}
	s := string(b)
	d.names[s] = s
	return s
}

func (d *Decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec > 999999999 {
			d.fail()
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	default:
		d.fail()
		return time.Time{}
	}
}

func (d *Decoder) value() nhisync.Value {
	switch d.byte() {
	case 0:
		return nhisync.Value{}
	case 1:
		return nhisync.Str(d.str())
	case 2:
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			d.fail()
			return nhisync.Value{}
		}
		elems := make([]string, n)
		for i := range elems {
			elems[i] = d.str()
		}
		return nhisync.SetOf(elems...)
	default:
		d.fail()
		return nhisync.Value{}
	}
}

// count reads a field count, refusing one the rest of the blob cannot hold
// (every field takes at least two bytes).
func (d *Decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)/2) {
		d.fail()
		return 0
	}
	return int(n)
}

// DecodeRecord fills r's times and fields from a state blob.
func (d *Decoder) DecodeRecord(b []byte, r *nhisync.Record) error {
	if err := d.reset(b); err != nil {
		return err
	}
	r.Created = d.time()
	r.Updated = d.time()
	n := d.count()
	r.Fields = make(map[string]*nhisync.Golden, n)
	for range n {
		name := d.name()
		flags := d.byte()
		if flags&gNil != 0 {
			r.Fields[name] = nil
			continue
		}
		g := &nhisync.Golden{Value: d.value(), Source: d.str(), Rule: d.str(), At: d.time()}
		if flags&gActor != 0 {
			g.Actor = d.str()
		}
		if flags&gSourceTime != 0 {
			g.SourceTime = d.time()
		}
		r.Fields[name] = g
	}
	return d.done()
}

// DecodeLink fills l's times and fields from a state blob.
func (d *Decoder) DecodeLink(b []byte, l *nhisync.Link) error {
	if err := d.reset(b); err != nil {
		return err
	}
	l.FirstSeen = d.time()
	l.SeenAt = d.time()
	l.GoneAt = d.time()
	l.Modified = d.time()
	n := d.count()
	l.Fields = make(map[string]*nhisync.FieldState, n)
	for range n {
		name := d.name()
		flags := d.byte()
		if flags&fNil != 0 {
			l.Fields[name] = nil
			continue
		}
		fs := &nhisync.FieldState{Shadow: d.value()}
		if flags&fSame != 0 {
			fs.Asserted = fs.Shadow
		} else {
			fs.Asserted = d.value()
		}
		if flags&fSince != 0 {
			fs.Since = d.time()
		}
		if flags&fSourceTime != 0 {
			fs.SourceTime = d.time()
		}
		if flags&fActor != 0 {
			fs.Actor = d.str()
		}
		if flags&fReport != 0 {
			v := d.value()
			fs.Report = &v
		}
		l.Fields[name] = fs
	}
	return d.done()
}

func (d *Decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return d.err
}
