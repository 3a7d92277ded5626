package native

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// Invalid is a native value a connector found broken (a key given twice,
// aliases expanding past the limit); Decode turns it into
// nhisync.Malformed(Reason).
type Invalid struct{ Reason string }

// Decode turns a native value into the canonical value of mapping m, then
// applies m.Read when it is set. Strings, []byte, numbers (json.Number,
// floats, integers), booleans and time.Time become scalars; arrays become
// sets, as does text in a set-typed mapping (split by m.Separator()). nil
// and empty text are the zero Value. An object, an array holding an
// object or an array, and an Invalid become nhisync.Malformed values, so
// validation quarantines them with the reason instead of the read failing
// or the object's text travelling as a value. It returns *nhisync.Error
// EINVALID when a transform fails.
func Decode(v any, m *nhisync.Mapping) (nhisync.Value, error) {
	var out nhisync.Value
	switch v := v.(type) {
	case Invalid:
		return nhisync.Malformed(v.Reason), nil
	case string:
		out = textValue(v, m)
	case []any:
		elems := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := Text(e)
			if !ok {
				return nhisync.Malformed(fmt.Sprintf("a list element is %s, expected text", kindOf(e))), nil
			}
			elems = append(elems, s)
		}
		out = nhisync.SetOf(elems...)
	case []string:
		out = nhisync.SetOf(v...)
	case map[string]any:
		return nhisync.Malformed("an object where a value belongs; map the key inside it (a.b) instead"), nil
	default:
		s, ok := Text(v)
		if !ok {
			return nhisync.Value{}, nhisync.Errorf(nhisync.EINVALID, "field %s (%s): unsupported native value of type %T", m.Field, m.Name, v)
		}
		out = nhisync.Str(s)
	}
	return read(out, m)
}

// DecodeText is Decode for a value that is text, such as a CSV cell or a
// text column; it does not allocate for scalars.
func DecodeText(s string, m *nhisync.Mapping) (nhisync.Value, error) {
	return read(textValue(s, m), m)
}

// kindOf names a native value's kind for a reason.
func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

// Limit returns v, or a Malformed value when v's text is longer than max
// bytes (max <= 0: no limit), so one huge cell cannot travel to every
// system.
func Limit(v nhisync.Value, max int) nhisync.Value {
	if max <= 0 {
		return v
	}
	n := len(v.Text())
	for _, e := range v.Elems() {
		n += len(e)
	}
	if n > max {
		return nhisync.Malformed(fmt.Sprintf("the value is %d bytes, over the limit of %d (max_value_bytes)", n, max))
	}
	return v
}

func textValue(s string, m *nhisync.Mapping) nhisync.Value {
	if m.Type.IsSet() {
		if strings.TrimSpace(s) == "" {
			return nhisync.SetOf()
		}
		return nhisync.SetOf(strings.Split(s, m.Separator())...)
	}
	return nhisync.Str(s)
}

func read(v nhisync.Value, m *nhisync.Mapping) (nhisync.Value, error) {
	if m.Read == nil {
		return v, nil
	}
	out, err := m.Read.Apply(v)
	if err != nil {
		return nhisync.Value{}, &nhisync.Error{Code: nhisync.EINVALID, Message: "field " + m.Field + " (" + m.Name + "): read transform failed", Err: err}
	}
	return out, nil
}

// Text returns the text of a native scalar: strings as they are, integral
// floats without a fraction, times as canonical RFC 3339. It reports false
// for arrays and objects; nil is "".
func Text(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	case []byte:
		return string(v), true
	case json.Number:
		return string(v), true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int8:
		return strconv.FormatInt(int64(v), 10), true
	case int16:
		return strconv.FormatInt(int64(v), 10), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case uint8:
		return strconv.FormatUint(uint64(v), 10), true
	case uint16:
		return strconv.FormatUint(uint64(v), 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float32:
		return formatFloat(float64(v), 32), true
	case float64:
		return formatFloat(v, 64), true
	case time.Time:
		return nhisync.FormatTime(v), true
	}
	return "", false
}

// formatFloat writes integral floats as integers (JSON decodes 42 as
// 42.0), others in the shortest form that reads back the same.
func formatFloat(f float64, bits int) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// Encode turns a canonical value into the native value mapping m stores,
// after m.Write when it is set: nil for the zero Value (an empty cell,
// NULL, a removed key), a string for a scalar, and for a set either []any
// of strings (arrays: the format has arrays) or the elements joined by
// m.Separator(). It returns *nhisync.Error EINVALID when the transform
// fails or a set element holds the separator (it would read back as two).
func Encode(v nhisync.Value, m *nhisync.Mapping, arrays bool) (any, error) {
	if m.Write != nil {
		out, err := m.Write.Apply(v)
		if err != nil {
			return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: "field " + m.Field + " (" + m.Name + "): write transform failed", Err: err}
		}
		v = out
	}
	switch {
	case v.IsZero():
		return nil, nil
	case v.IsSet() && arrays:
		out := make([]any, len(v.Elems()))
		for i, e := range v.Elems() {
			out[i] = e
		}
		return out, nil
	case v.IsSet():
		sep := m.Separator()
		for _, e := range v.Elems() {
			if strings.Contains(e, sep) {
				return nil, nhisync.Errorf(nhisync.EINVALID, "field %s (%s): set element %q holds the separator %q; choose another with join:", m.Field, m.Name, e, sep)
			}
		}
		return v.Join(sep), nil
	default:
		return v.Text(), nil
	}
}
