package nhisync

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendLeaf appends c's JSON exactly as encoding/json.Marshal writes it
// (same member order, omitempty, string escaping with HTML-safe escapes),
// without reflection: sealing an entry is on every commit's path. It
// reports false for what it does not encode the same way (a time whose
// year is outside 0-9999, which encoding/json refuses); the caller then
// falls back to encoding/json. c.Hash must be empty, as in a leaf.
// TestLeafEncoderMatchesJSON proves the identity.
func appendLeaf(b []byte, c *AuditEntry) ([]byte, bool) {
	b, ok := appendLeafHead(b, c.Seq, c.Time)
	if !ok {
		return b, false
	}
	b = appendLeafBody(b, c)
	return appendLeafTail(b, c.PrevHash, c.Hash), true
}

// appendLeafHead appends the leaf's first members, seq and time: what a
// store sets when it appends the entry. It reports false for a year
// outside 0-9999, which encoding/json refuses.
func appendLeafHead(b []byte, seq int64, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	return appendLeafTime(b, t), true
}

// appendLeafTime appends the time member of a leaf head.
func appendLeafTime(b []byte, t time.Time) []byte {
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, "2006-01-02T15:04:05.999999999Z07:00")
	return append(b, '"')
}

// appendLeafHeadText is appendLeafHead with the time member as
// appendLeafTime wrote it.
func appendLeafHeadText(b []byte, seq int64, timeMember []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, timeMember...)
}

// appendLeafBody appends the members of c's leaf from actor to fields:
// all the engine knows when it writes the entry.
func appendLeafBody(b []byte, c *AuditEntry) []byte {
	b = append(b, `,"actor":`...)
	b = appendJSONString(b, c.Actor)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, c.Action)
	if c.Kind != "" {
		b = append(b, `,"kind":`...)
		b = appendJSONString(b, c.Kind)
	}
	if c.RecordID != 0 {
		b = append(b, `,"record_id":`...)
		b = strconv.AppendInt(b, c.RecordID, 10)
	}
	if c.Record != "" {
		b = append(b, `,"record":`...)
		b = appendJSONString(b, c.Record)
	}
	if c.Field != "" {
		b = append(b, `,"field":`...)
		b = appendJSONString(b, c.Field)
	}
	if c.System != "" {
		b = append(b, `,"system":`...)
		b = appendJSONString(b, c.System)
	}
	if !c.Old.IsZero() {
		b = append(b, `,"old":`...)
		b = appendJSONValue(b, c.Old)
	}
	if !c.New.IsZero() {
		b = append(b, `,"new":`...)
		b = appendJSONValue(b, c.New)
	}
	if c.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, c.Reason)
	}
	if len(c.Links) > 0 {
		b = append(b, `,"links":[`...)
		for i := range c.Links {
			l := &c.Links[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"system":`...)
			b = appendJSONString(b, l.System)
			b = append(b, `,"id":`...)
			b = appendJSONString(b, l.ID)
			if l.Reason != "" {
				b = append(b, `,"reason":`...)
				b = appendJSONString(b, l.Reason)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(c.Fields) > 0 {
		b = append(b, `,"fields":[`...)
		for i := range c.Fields {
			f := &c.Fields[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"field":`...)
			b = appendJSONString(b, f.Field)
			b = append(b, `,"system":`...)
			b = appendJSONString(b, f.System)
			if f.Actor != "" {
				b = append(b, `,"actor":`...)
				b = appendJSONString(b, f.Actor)
			}
			b = append(b, `,"value":`...)
			b = appendJSONValue(b, f.Value)
			if f.Reason != "" {
				b = append(b, `,"reason":`...)
				b = appendJSONString(b, f.Reason)
			}
			if len(f.Agreed) > 0 {
				b = append(b, `,"agreed":`...)
				b = appendJSONStrings(b, f.Agreed)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return b
}

// appendLeafTail appends prev_hash, hash when not empty, and the closing
// brace.
func appendLeafTail(b []byte, prevHash, hash string) []byte {
	b = append(b, `,"prev_hash":`...)
	b = appendJSONString(b, prevHash)
	if hash != "" {
		b = append(b, `,"hash":`...)
		b = appendJSONString(b, hash)
	}
	return append(b, '}')
}

// appendJSONValue appends v as Value.MarshalJSON writes it.
func appendJSONValue(b []byte, v Value) []byte {
	switch {
	case v.IsZero():
		return append(b, "null"...)
	case v.set:
		return appendJSONStrings(b, v.elems)
	default:
		return appendJSONString(b, v.s)
	}
}

// appendJSONStrings appends ss as a JSON array of strings.
func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, e := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, e)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// jsonSafe tells the ASCII bytes appendJSONString copies as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s quoted as encoding/json does by default:
// '"' and '\\' escaped, \b \f \n \r \t short, other control characters
// and '<', '>', '&' as \u00XX, bytes that are not UTF-8 as \ufffd, and
// U+2028, U+2029 as \u2028, \u2029.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// mayHoldInvalidUTF8 reports whether leaf bytes from appendLeaf may come
// from a string that is not UTF-8: appendJSONString writes each such byte
// as the escape \ufffd, and writes that text otherwise only for a
// backslash followed by "ufffd" (as \\ufffd), which this also reports.
func mayHoldInvalidUTF8(b []byte) bool {
	return bytes.Contains(b, []byte(`\ufffd`))
}
