package sql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// decode turns a value read from a column of kind k into the canonical
// value of mapping m.
func decode(k colKind, v any, m *nhisync.Mapping) (nhisync.Value, error) {
	switch x := v.(type) {
	case nil:
		return native.Decode(nil, m)
	case int64:
		if k == kindBool && (x == 0 || x == 1) { // TINYINT(1)
			return native.Decode(x == 1, m)
		}
	case time.Time:
		if x.IsZero() { // MySQL's 0000-00-00
			return native.Decode(nil, m)
		}
	case []byte:
		if k == kindBool && len(x) == 1 && x[0] <= 1 { // BIT(1)
			return native.Decode(x[0] == 1, m)
		}
		v = string(x) // MySQL text arrives as bytes
	}
	switch k {
	case kindArray:
		s, ok := v.(string)
		if !ok {
			break
		}
		elems, err := parsePGArray(s)
		if err != nil {
			return nhisync.Value{}, nhisync.Errorf(nhisync.EINVALID, "field %s (%s): %v", m.Field, m.Name, err)
		}
		return native.Decode(elems, m)
	case kindJSON:
		s, ok := v.(string)
		if !ok {
			break
		}
		// The common case, an array of plain strings, is read without the
		// JSON decoder (half the time of a snapshot went there).
		if elems, ok := stringArray(s); ok {
			return native.Decode(elems, m)
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err != nil {
			return nhisync.Value{}, nhisync.Errorf(nhisync.EINVALID, "field %s (%s): the JSON column holds no valid JSON: %v", m.Field, m.Name, err)
		}
		return native.Decode(x, m)
	}
	return native.Decode(v, m)
}

// encode turns a canonical value into what is bound to a column of kind
// k: []string for a text[] column, JSON text for a JSON column, a bool for
// a boolean column, a time.Time (UTC) for a timestamp column; text
// otherwise. The zero Value is NULL.
func encode(k colKind, v nhisync.Value, m *nhisync.Mapping) (any, error) {
	switch k {
	case kindArray, kindJSON:
		x, err := native.Encode(v, m, true)
		if err != nil || x == nil {
			return nil, err
		}
		if k == kindJSON {
			b, err := json.Marshal(x)
			return string(b), err
		}
		switch x := x.(type) {
		case []any:
			out := make([]string, len(x))
			for i, e := range x {
				out[i], _ = e.(string)
			}
			return out, nil
		case string:
			return []string{x}, nil
		}
		return x, nil
	case kindBool:
		x, err := native.Encode(v, m, false)
		if s, ok := x.(string); ok && err == nil {
			switch nhisync.TypeBool.Canonical(nhisync.Str(s)).Text() {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return x, err
	case kindTime:
		x, err := native.Encode(v, m, false)
		if s, ok := x.(string); ok && err == nil {
			if t, ok := nhisync.ParseTime(s); ok {
				return t, nil
			}
			return nil, nhisync.Errorf(nhisync.EINVALID, "field %s (%s): %q is not a time; the column %s is a timestamp", m.Field, m.Name, s, m.Name)
		}
		return x, err
	}
	return native.Encode(v, m, false)
}

// parsePGArray reads the text form of a one-dimensional PostgreSQL array
// (`{a,"b c",NULL}`); NULL elements are dropped.
func parsePGArray(s string) ([]string, error) {
	if i := strings.Index(s, "={"); i >= 0 && strings.HasPrefix(s, "[") {
		s = s[i+1:] // [1:2]={…}: explicit bounds
	}
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, fmt.Errorf("%q is not a PostgreSQL array", s)
	}
	body := s[1 : len(s)-1]
	out := []string{}
	if body == "" {
		return out, nil
	}
	var b bytes.Buffer
	quoted, inQuote, escaped := false, false, false
	flush := func() {
		e := b.String()
		if quoted || e != "NULL" {
			out = append(out, e)
		}
		b.Reset()
		quoted = false
	}
	for i := 0; i < len(body); i++ {
		ch := body[i]
		switch {
		case escaped:
			b.WriteByte(ch)
			escaped = false
		case ch == '\\':
			escaped = true
		case ch == '"':
			inQuote, quoted = !inQuote, true
		case ch == '{' && !inQuote:
			return nil, fmt.Errorf("a multi-dimensional array cannot hold a set")
		case ch == ',' && !inQuote:
			flush()
		default:
			if inQuote || (ch != ' ' && ch != '\t' && ch != '\n') || b.Len() > 0 {
				b.WriteByte(ch)
			}
		}
	}
	if inQuote {
		return nil, fmt.Errorf("%q: unterminated quote", s)
	}
	flush()
	return out, nil
}

// stringArray reads a JSON array of strings holding no escapes
// (`["a", "b c"]`); ok is false for anything else, which the JSON decoder
// then reads.
func stringArray(s string) (elems []string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' || strings.IndexByte(s, '\\') >= 0 {
		return nil, false
	}
	body := strings.TrimSpace(s[1 : len(s)-1])
	elems = []string{}
	for body != "" {
		if body[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(body[1:], '"')
		if end < 0 {
			return nil, false
		}
		e := body[1 : 1+end]
		for i := 0; i < len(e); i++ {
			if e[i] < 0x20 {
				return nil, false
			}
		}
		elems = append(elems, e)
		body = strings.TrimSpace(body[2+end:])
		if body == "" {
			break
		}
		if body[0] != ',' {
			return nil, false
		}
		body = strings.TrimSpace(body[1:])
		if body == "" {
			return nil, false // a trailing comma
		}
	}
	return elems, true
}
