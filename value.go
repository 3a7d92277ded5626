package nhisync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// FieldType is the type of a canonical field.
type FieldType string

// Field types (SPEC §2).
const (
	TypeString FieldType = "string"
	TypeInt    FieldType = "int"
	TypeBool   FieldType = "bool"
	TypeTime   FieldType = "time"
	TypeEnum   FieldType = "enum"
	TypeSet    FieldType = "set"
	TypeRef    FieldType = "ref"
	TypeRefs   FieldType = "refs"
)

// FieldTypes lists every valid type, for error messages.
var FieldTypes = []FieldType{TypeString, TypeInt, TypeBool, TypeTime, TypeEnum, TypeSet, TypeRef, TypeRefs}

// IsSet reports whether values of t are sets of strings.
func (t FieldType) IsSet() bool { return t == TypeSet || t == TypeRefs }

// Value is one field's canonical value: either a scalar held as its
// canonical text, or a set of strings kept sorted and unique. The zero
// Value means "no value": an empty cell, NULL, a missing key, an empty
// string and an empty set are all the zero Value.
type Value struct {
	s     string
	elems []string
	set   bool
}

// Str returns a scalar value. Surrounding white space is dropped, so a
// blank string is the zero Value.
func Str(s string) Value {
	s = strings.TrimSpace(s)
	if s == "" {
		return Value{}
	}
	return Value{s: s}
}

// SetOf returns a set value of the given elements, trimmed, without empty
// ones, sorted and unique.
func SetOf(elems ...string) Value {
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return Value{set: true}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return Value{elems: out, set: true}
}

// malformedMark starts the text of a Malformed value. No value a system
// holds can start with it: Problem refuses every NUL byte.
const malformedMark = "\x00\x00malformed: "

// Malformed returns the value standing in for data a system holds that is
// not a value: a row cut short, an object where text belongs, a key given
// twice, a value over the size limit. Validation refuses it with reason
// (see Problem), so it is quarantined, listed, and never propagates.
func Malformed(reason string) Value { return Value{s: malformedMark + reason} }

// MalformedReason returns the reason of a Malformed value; false for any
// other value.
func (v Value) MalformedReason() (string, bool) {
	if strings.HasPrefix(v.s, malformedMark) {
		return v.s[len(malformedMark):], true
	}
	if len(v.elems) == 1 && strings.HasPrefix(v.elems[0], malformedMark) {
		return v.elems[0][len(malformedMark):], true
	}
	return "", false
}

// Problem reports why v cannot be a value of any field ("" when it can):
// the reason of a Malformed value, a NUL byte, or text that is not valid
// UTF-8 (which would otherwise turn into U+FFFD on its way to another
// system).
func (v Value) Problem() string {
	if v.set {
		for _, e := range v.elems {
			if p := textProblem(e); p != "" {
				return p
			}
		}
		return ""
	}
	return textProblem(v.s)
}

func textProblem(s string) string {
	if strings.HasPrefix(s, malformedMark) {
		return s[len(malformedMark):]
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Sprintf("holds a NUL byte (at byte %d)", i+1)
	}
	if !utf8.ValidString(s) {
		for i, r := range s {
			if r == utf8.RuneError {
				if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
					return fmt.Sprintf("is not valid UTF-8 (byte %d is 0x%02x); fix the encoding at the source", i+1, s[i])
				}
			}
		}
	}
	return ""
}

// IsZero reports whether v is "no value".
func (v Value) IsZero() bool { return v.s == "" && len(v.elems) == 0 }

// IsSet reports whether v was built as a set.
func (v Value) IsSet() bool { return v.set }

// Text returns a scalar's text ("" for a set or no value).
func (v Value) Text() string { return v.s }

// Elems returns a set's elements, sorted. The slice must not be modified.
func (v Value) Elems() []string { return v.elems }

// Has reports whether a set holds e.
func (v Value) Has(e string) bool {
	_, ok := slices.BinarySearch(v.elems, e)
	return ok
}

// Equal reports whether v and o hold the same value. Two zero values are
// equal whether or not they were built as sets.
func (v Value) Equal(o Value) bool {
	if len(v.elems) == 0 && len(o.elems) == 0 {
		// Two scalars, or no value: a set's text is always "", so a set
		// without elements is no value. Small enough to inline: a pass
		// compares every value it reads with the link's, several times.
		return v.s == o.s
	}
	return v.equalSets(o)
}

// equalSets is Equal when v or o holds elements.
func (v Value) equalSets(o Value) bool {
	return v.set == o.set && v.s == o.s && slices.Equal(v.elems, o.elems)
}

// String formats v for people: a scalar as is, a set as its elements
// joined by ", ", no value as "".
func (v Value) String() string {
	if r, ok := v.MalformedReason(); ok {
		return "(malformed: " + r + ")"
	}
	if v.set {
		return strings.Join(v.elems, ", ")
	}
	return v.s
}

// Join returns a set's elements joined by sep (a scalar's text as is).
func (v Value) Join(sep string) string {
	if v.set {
		return strings.Join(v.elems, sep)
	}
	return v.s
}

// AppendBinary appends an unambiguous encoding of v, used for content
// hashes. Scalars and sets never encode alike.
func (v Value) AppendBinary(b []byte) []byte {
	switch {
	case v.IsZero():
		return append(b, 0)
	case v.set:
		b = append(b, 2)
		b = strconv.AppendInt(b, int64(len(v.elems)), 10)
		for _, e := range v.elems {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(len(e)), 10)
			b = append(b, ':')
			b = append(b, e...)
		}
		return b
	default:
		b = append(b, 1)
		b = strconv.AppendInt(b, int64(len(v.s)), 10)
		b = append(b, ':')
		return append(b, v.s...)
	}
}

// ReadBinary decodes one value AppendBinary encoded at the start of b and
// returns it with the rest of b; ok is false when b does not start with
// one. The value's text is b's own (no copy). The encoding keeps no value
// without its type, so the zero value comes back as t's (an empty set for
// a set type), as t.Canonical makes it: a value canonical for t
// round-trips exactly. It lets a pass keep an observation as the bytes
// its content hash was built from.
func (t FieldType) ReadBinary(b string) (v Value, rest string, ok bool) {
	if len(b) == 0 {
		return Value{}, b, false
	}
	tag := b[0]
	b = b[1:]
	switch tag {
	case 0:
		return Value{set: t.IsSet()}, b, true
	case 1:
		s, rest, ok := readBinaryText(b)
		if !ok || s == "" {
			return Value{}, b, false
		}
		return Value{s: s}, rest, true
	case 2:
		n, b, ok := readBinaryLen(b)
		if !ok || n == 0 || n > len(b) {
			return Value{}, b, false
		}
		elems := make([]string, n)
		for i := range elems {
			if len(b) == 0 || b[0] != ':' {
				return Value{}, b, false
			}
			if elems[i], b, ok = readBinaryText(b[1:]); !ok {
				return Value{}, b, false
			}
		}
		return Value{elems: elems, set: true}, b, true
	}
	return Value{}, b, false
}

// SkipBinary returns b after the value AppendBinary encoded at its start,
// without decoding it; ok is false when b does not start with one.
func SkipBinary(b string) (rest string, ok bool) {
	if len(b) == 0 {
		return b, false
	}
	tag := b[0]
	b = b[1:]
	switch tag {
	case 0:
		return b, true
	case 1:
		_, b, ok = readBinaryText(b)
		return b, ok
	case 2:
		n, b, ok := readBinaryLen(b)
		if !ok || n == 0 {
			return b, false
		}
		for range n {
			if len(b) == 0 || b[0] != ':' {
				return b, false
			}
			if _, b, ok = readBinaryText(b[1:]); !ok {
				return b, false
			}
		}
		return b, true
	}
	return b, false
}

// readBinaryText reads "LEN:TEXT".
func readBinaryText(b string) (string, string, bool) {
	n, b, ok := readBinaryLen(b)
	if !ok || len(b) == 0 || b[0] != ':' || n > len(b)-1 {
		return "", b, false
	}
	return b[1 : 1+n], b[1+n:], true
}

// readBinaryLen reads a decimal length.
func readBinaryLen(b string) (int, string, bool) {
	n, i := 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n > (1<<31)/10 {
			return 0, b, false
		}
		n = n*10 + int(b[i]-'0')
	}
	return n, b[i:], i > 0
}

// MarshalJSON encodes no value as null, a scalar as a string and a set as
// an array of strings.
func (v Value) MarshalJSON() ([]byte, error) {
	switch {
	case v.IsZero():
		return []byte("null"), nil
	case v.set:
		return json.Marshal(v.elems)
	default:
		return json.Marshal(v.s)
	}
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*v = Value{}
	case len(b) > 0 && b[0] == '[':
		var elems []string
		if err := json.Unmarshal(b, &elems); err != nil {
			return err
		}
		*v = SetOf(elems...)
	default:
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Str(s)
	}
	return nil
}

// Canonical returns v in the canonical form of type t: integers without
// leading zeros or "+", booleans as true/false, times as RFC 3339 in UTC,
// set values as sets. A value that does not parse as t is returned
// unchanged so that validation can quarantine it with a clear reason.
func (t FieldType) Canonical(v Value) Value {
	if v.IsZero() {
		if t.IsSet() {
			return Value{set: true}
		}
		return Value{}
	}
	if t.IsSet() {
		if _, bad := v.MalformedReason(); v.set || bad {
			return v // a malformed value stays what it is, for validation
		}
		return SetOf(v.s)
	}
	if v.set {
		// A set where a scalar belongs: keep it for validation to refuse.
		return v
	}
	// An int or time already in canonical form (as every system nhisync
	// writes holds them) is kept as read: formatted into a buffer on the
	// stack to compare, not into a new string per value read.
	switch t {
	case TypeInt:
		if n, err := strconv.ParseInt(v.s, 10, 64); err == nil {
			var buf [20]byte
			if c := strconv.AppendInt(buf[:0], n, 10); string(c) != v.s {
				return Value{s: string(c)}
			}
			return Value{s: v.s}
		}
	case TypeBool:
		switch strings.ToLower(v.s) {
		case "true", "t", "yes", "y", "1", "on":
			return Value{s: "true"}
		case "false", "f", "no", "n", "0", "off":
			return Value{s: "false"}
		}
	case TypeTime:
		if tm, ok := ParseTime(v.s); ok {
			var buf [64]byte
			if c := appendTime(buf[:0], tm); string(c) != v.s {
				return Value{s: string(c)}
			}
			return Value{s: v.s}
		}
	}
	return v
}

// Check reports why v is not a valid value of type t ("" when it is).
// values lists the allowed values of an enum.
func (t FieldType) Check(v Value, values []string) string {
	if v.IsZero() {
		return ""
	}
	if p := v.Problem(); p != "" {
		return p
	}
	if t.IsSet() != v.set {
		if t.IsSet() {
			return fmt.Sprintf("expected a set, got %q", v.s)
		}
		return fmt.Sprintf("expected a single %s, got a set of %d", t, len(v.elems))
	}
	switch t {
	case TypeInt:
		if _, err := strconv.ParseInt(v.s, 10, 64); err != nil {
			return fmt.Sprintf("%q is not an integer", v.s)
		}
	case TypeBool:
		if v.s != "true" && v.s != "false" {
			return fmt.Sprintf("%q is not true or false", v.s)
		}
	case TypeTime:
		if _, ok := ParseTime(v.s); !ok {
			return fmt.Sprintf("%q is not an RFC 3339 time (like 2026-01-02T15:04:05Z)", v.s)
		}
	case TypeEnum:
		if !slices.Contains(values, v.s) {
			return fmt.Sprintf("%q is not one of %s", v.s, strings.Join(values, ", "))
		}
	}
	return ""
}

// ParseTime parses RFC 3339 (with or without fractional seconds), and the
// common "2006-01-02 15:04:05" and date-only forms as UTC.
func ParseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// FormatTime formats t as canonical RFC 3339 in UTC.
func FormatTime(t time.Time) string {
	var buf [64]byte
	return string(appendTime(buf[:0], t))
}

// appendTime appends t as FormatTime formats it (FieldType.Canonical
// compares it with the text read without a string of its own).
func appendTime(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, time.RFC3339Nano) }
