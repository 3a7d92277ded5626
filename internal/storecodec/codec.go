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
// Both start with a format version byte. The encoders write version 2;
// the decoder reads versions 1 and 2, so a store written before keeps
// working and its rows are rewritten in version 2 as they change.
//
// Both versions, with counts as uvarints, values as a tag (0 none, 1
// scalar + string, 2 set + count + strings) and names as uvarint length +
// bytes, lay out:
//
//	record: version, created, updated, count, then per field in name order:
//	        name, flags (1 nil, 2 actor, 4 source time), value, source,
//	        rule, at, [actor], [source time]
//	link:   version, first seen, seen at, gone at, modified, count, then per
//	        field in name order: name, flags (1 nil, 2 asserted equals shadow,
//	        4 since, 8 source time, 16 actor, 32 report), shadow, [asserted],
//	        [since], [source time], [actor], [report]
//
// Version 1 writes strings (source, rule, actor) as uvarint length +
// bytes, and times as a presence byte (0 zero, 1 set) then varint Unix
// seconds and uvarint nanoseconds. But a record's golden fields mostly
// repeat one rule text, one source and the time of the pass, and a link's
// fields the times of the link: version 2 writes each string and time of
// a blob once and then refers back to it.
//
//	string: uvarint n; n even: a literal of n/2 bytes follows, and a
//	        non-empty one is remembered; n odd: the (n-1)/2th remembered
//	time:   uvarint n; 0 the zero time; 1 a literal (varint Unix seconds,
//	        uvarint nanoseconds); 2 varint nanoseconds after the first
//	        time remembered; n ≥ 3 the (n-3)th remembered. A time written
//	        by 1 or 2 is remembered.
//
// Each blob remembers at most maxRefs strings and maxRefs times, in the
// order written; later ones are written whole.
//
// A FieldState.Report pointing at a zero Value keeps its flag, so it reads
// back as a non-nil pointer to the zero Value: "refused against an empty
// golden value" survives.
const stateVersion = 2

// maxRefs bounds the strings and times one blob remembers.
const maxRefs = 32

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

// Time codes of version 2.
const (
	tZero = iota
	tLiteral
	tDelta
	tRef
)

// encoder appends a version 2 blob, remembering its strings and times.
type encoder struct {
	b     []byte
	strs  [maxRefs]string
	ns    int
	secs  [maxRefs]int64
	nsecs [maxRefs]int64
	nt    int
}

func (e *encoder) str(s string) {
	if s == "" {
		e.b = append(e.b, 0)
		return
	}
	for i := range e.ns {
		if e.strs[i] == s {
			e.b = binary.AppendUvarint(e.b, uint64(i)<<1|1)
			return
		}
	}
	if e.ns < maxRefs {
		e.strs[e.ns] = s
		e.ns++
	}
	e.b = binary.AppendUvarint(e.b, uint64(len(s))<<1)
	e.b = append(e.b, s...)
}

// maxDeltaSec bounds a delta so that its nanoseconds fit an int64.
const maxDeltaSec = 1 << 32

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, tZero)
		return
	}
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	for i := range e.nt {
		if e.secs[i] == sec && e.nsecs[i] == nsec {
			e.b = binary.AppendUvarint(e.b, uint64(i)+tRef)
			return
		}
	}
	if e.nt < maxRefs {
		e.secs[e.nt], e.nsecs[e.nt] = sec, nsec
		e.nt++
	}
	if e.nt > 1 {
		// A delta, when shorter than the literal.
		if ds := sec - e.secs[0]; ds > -maxDeltaSec && ds < maxDeltaSec {
			d := ds*1e9 + nsec - e.nsecs[0]
			if varintLen(d) < varintLen(sec)+varintLen(nsec) {
				e.b = append(e.b, tDelta)
				e.b = binary.AppendVarint(e.b, d)
				return
			}
		}
	}
	e.b = append(e.b, tLiteral)
	e.b = binary.AppendVarint(e.b, sec)
	e.b = binary.AppendUvarint(e.b, uint64(nsec))
}

// varintLen is the length of x as a varint; nanoseconds (0 ≤ x < 10⁹) are
// as long as a uvarint.
func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	n := 1
	for ux >= 0x80 {
		ux >>= 7
		n++
	}
	return n
}

// AppendRecord appends the state of r.
func AppendRecord(b []byte, r *nhisync.Record) []byte {
	e := encoder{b: append(b, stateVersion)}
	e.time(r.Created)
	e.time(r.Updated)
	e.b = binary.AppendUvarint(e.b, uint64(len(r.Fields)))
	var fields [16]field[*nhisync.Golden]
	for _, f := range sortedFields(fields[:0], r.Fields) {
		e.b = appendStr(e.b, f.name)
		g := f.v
		if g == nil {
			e.b = append(e.b, gNil)
			continue
		}
		var flags byte
		if g.Actor != "" {
			flags |= gActor
		}
		if !g.SourceTime.IsZero() {
			flags |= gSourceTime
		}
		e.b = append(e.b, flags)
		e.b = appendValue(e.b, g.Value)
		e.str(g.Source)
		e.str(g.Rule)
		e.time(g.At)
		if flags&gActor != 0 {
			e.str(g.Actor)
		}
		if flags&gSourceTime != 0 {
			e.time(g.SourceTime)
		}
	}
	return e.b
}

// AppendLink appends the state of l.
func AppendLink(b []byte, l *nhisync.Link) []byte {
	e := encoder{b: append(b, stateVersion)}
	e.time(l.FirstSeen)
	e.time(l.SeenAt)
	e.time(l.GoneAt)
	e.time(l.Modified)
	e.b = binary.AppendUvarint(e.b, uint64(len(l.Fields)))
	var fields [16]field[*nhisync.FieldState]
	for _, f := range sortedFields(fields[:0], l.Fields) {
		e.b = appendStr(e.b, f.name)
		fs := f.v
		if fs == nil {
			e.b = append(e.b, fNil)
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
		e.b = append(e.b, flags)
		e.b = appendValue(e.b, fs.Shadow)
		if flags&fSame == 0 {
			e.b = appendValue(e.b, fs.Asserted)
		}
		if flags&fSince != 0 {
			e.time(fs.Since)
		}
		if flags&fSourceTime != 0 {
			e.time(fs.SourceTime)
		}
		if flags&fActor != 0 {
			e.str(fs.Actor)
		}
		if flags&fReport != 0 {
			e.b = appendValue(e.b, *fs.Report)
		}
	}
	return e.b
}

// field is one entry of a state's map.
type field[V any] struct {
	name string
	v    V
}

// sortedFields appends the entries of m to dst in name order: an
// insertion sort, as a state has a dozen fields or so.
func sortedFields[V any](dst []field[V], m map[string]V) []field[V] {
	for k, v := range m {
		i := len(dst)
		dst = append(dst, field[V]{k, v})
		for ; i > 0 && dst[i-1].name > k; i-- {
			dst[i] = dst[i-1]
		}
		dst[i] = field[V]{k, v}
	}
	return dst
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
	b       []byte
	err     error
	version byte
	names   map[string]string
	// strs and times are what a version 2 blob remembered so far.
	strs  []string
	times []time.Time
}

func (d *Decoder) reset(b []byte) error {
	d.b, d.err = b, nil
	if len(b) == 0 || (b[0] != 1 && b[0] != 2) {
		return fmt.Errorf("%w: unknown format version", ErrCorrupt)
	}
	d.version = b[0]
	d.b = b[1:]
	d.strs, d.times = d.strs[:0], d.times[:0]
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
	return d.take(d.uvarint())
}

func (d *Decoder) take(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *Decoder) str() string { return string(d.bytes()) }

// ref reads a version 2 string: a literal or one remembered.
func (d *Decoder) ref() string {
	n := d.uvarint()
	if n&1 == 1 {
		if i := n >> 1; i < uint64(len(d.strs)) {
			return d.strs[i]
		}
		d.fail()
		return ""
	}
	b := d.take(n >> 1)
	if len(b) == 0 {
		return ""
	}
	s := string(b)
	if len(d.strs) < maxRefs {
		d.strs = append(d.strs, s)
	}
	return s
}

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

// time reads a time of either version.
func (d *Decoder) time() time.Time {
	if d.version == 1 {
		switch d.byte() {
		case 0:
			return time.Time{}
		case 1:
			return d.literalTime()
		default:
			d.fail()
			return time.Time{}
		}
	}
	var t time.Time
	switch n := d.uvarint(); n {
	case tZero:
		return time.Time{}
	case tLiteral:
		t = d.literalTime()
	case tDelta:
		if len(d.times) == 0 {
			d.fail()
			return time.Time{}
		}
		t = d.times[0].Add(time.Duration(d.varint()))
	default:
		if i := n - tRef; i < uint64(len(d.times)) {
			return d.times[i]
		}
		d.fail()
		return time.Time{}
	}
	if d.err == nil && len(d.times) < maxRefs {
		d.times = append(d.times, t)
	}
	return t
}

// text reads a string of either version.
func (d *Decoder) text() string {
	if d.version == 1 {
		return d.str()
	}
	return d.ref()
}

func (d *Decoder) literalTime() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec > 999999999 || d.err != nil {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
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
		g := &nhisync.Golden{Value: d.value(), Source: d.text(), Rule: d.text(), At: d.time()}
		if flags&gActor != 0 {
			g.Actor = d.text()
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
			fs.Actor = d.text()
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
