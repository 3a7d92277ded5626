package sqlite

import (
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/nhisync/nhisync"
)

// An outbox row's data column is the write as encoding/json writes it. A
// drain claims every queued write and decodes it, and encoding/json's
// reflection was some 40% of a claim's CPU (BenchmarkClaimOutbox), so
// decodeOutboxWrite reads what encoding/json writes for a write without
// reflection: an object whose members are the write's JSON names, strings
// without escapes, integers, booleans, values and times. Anything else it
// leaves to encoding/json, which decodes the row as before: a row with a
// create's values, an escape in a string, an unknown or differently
// cased member, a null where no value belongs, a number written otherwise.
// So every row reads as encoding/json reads it, old rows included.

// errSlowOutbox: the row is for encoding/json.
var errSlowOutbox = errors.New("outbox row left to encoding/json")

// decodeOutboxWrite decodes data, an outbox row's data column, into w (a
// zero write), as json.Unmarshal does.
func decodeOutboxWrite(data []byte, w *nhisync.OutboxWrite) error {
	if err := fastOutboxWrite(data, w); err == nil {
		return nil
	}
	*w = nhisync.OutboxWrite{}
	return json.Unmarshal(data, w)
}

// fastOutboxWrite is decodeOutboxWrite's reading without reflection; it
// fails (errSlowOutbox, or a time's parse error) on what it does not read.
func fastOutboxWrite(data []byte, w *nhisync.OutboxWrite) error {
	d := outboxDecoder{b: data}
	d.space()
	if !d.byte('{') {
		return errSlowOutbox
	}
	d.space()
	if d.byte('}') {
		return d.end()
	}
	for {
		key, ok := d.str()
		if !ok {
			return errSlowOutbox
		}
		d.space()
		if !d.byte(':') {
			return errSlowOutbox
		}
		d.space()
		if err := d.member(key, w); err != nil {
			return err
		}
		d.space()
		if d.byte('}') {
			return d.end()
		}
		if !d.byte(',') {
			return errSlowOutbox
		}
		d.space()
	}
}

// outboxDecoder reads one outbox row's JSON.
type outboxDecoder struct {
	b []byte
	i int
}

// member reads the value of the member named key into w.
func (d *outboxDecoder) member(key string, w *nhisync.OutboxWrite) error {
	var ok bool
	switch key {
	case "id":
		w.ID, ok = d.int()
	case "system":
		w.System, ok = d.str()
	case "external_id":
		w.ExternalID, ok = d.str()
	case "record_id":
		w.RecordID, ok = d.int()
	case "kind":
		w.Kind, ok = d.str()
	case "record":
		w.Record, ok = d.str()
	case "field":
		w.Field, ok = d.str()
	case "old":
		w.Old, ok = d.value()
	case "new":
		w.New, ok = d.value()
	case "create":
		w.Create, ok = d.bool()
	case "status":
		w.Status, ok = d.str()
	case "approval_id":
		w.ApprovalID, ok = d.int()
	case "cause":
		w.Cause, ok = d.str()
	case "rule":
		w.Rule, ok = d.str()
	case "attempts":
		var n int64
		n, ok = d.int()
		w.Attempts = int(n)
	case "next_at":
		return d.time(&w.NextAt)
	case "last_error":
		w.LastError, ok = d.str()
	case "created":
		return d.time(&w.Created)
	case "counts":
		w.Counts, ok = d.bool()
	}
	if !ok {
		return errSlowOutbox
	}
	return nil
}

// end succeeds when nothing but white space follows.
func (d *outboxDecoder) end() error {
	d.space()
	if d.i != len(d.b) {
		return errSlowOutbox
	}
	return nil
}

func (d *outboxDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// byte consumes c when it comes next.
func (d *outboxDecoder) byte(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// rawStr reads a JSON string without escapes, control characters or
// invalid UTF-8 (which encoding/json reads its own way), as its bytes.
func (d *outboxDecoder) rawStr() ([]byte, bool) {
	if !d.byte('"') {
		return nil, false
	}
	start := d.i
	ascii := true
	for ; d.i < len(d.b); d.i++ {
		switch c := d.b[d.i]; {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (d *outboxDecoder) str() (string, bool) {
	s, ok := d.rawStr()
	return string(s), ok
}

// int reads an integer written as encoding/json writes an int64.
func (d *outboxDecoder) int() (int64, bool) {
	neg := d.byte('-')
	start := d.i
	var n int64
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		if d.i-start >= 18 {
			return 0, false // may overflow: encoding/json says so
		}
		n = n*10 + int64(d.b[d.i]-'0')
		d.i++
	}
	digits := d.i - start
	if digits == 0 || digits > 1 && d.b[start] == '0' {
		return 0, false
	}
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

func (d *outboxDecoder) bool() (bool, bool) {
	switch {
	case d.lit("true"):
		return true, true
	case d.lit("false"):
		return false, true
	}
	return false, false
}

// lit consumes the literal s when it comes next.
func (d *outboxDecoder) lit(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

// value reads a nhisync.Value as its UnmarshalJSON does: null, a string,
// or an array of strings (a set).
func (d *outboxDecoder) value() (nhisync.Value, bool) {
	switch {
	case d.lit("null"):
		return nhisync.Value{}, true
	case d.byte('['):
		var elems []string
		d.space()
		if d.byte(']') {
			return nhisync.SetOf(), true
		}
		for {
			s, ok := d.str()
			if !ok {
				return nhisync.Value{}, false
			}
			elems = append(elems, s)
			d.space()
			if d.byte(']') {
				return nhisync.SetOf(elems...), true
			}
			if !d.byte(',') {
				return nhisync.Value{}, false
			}
			d.space()
		}
	}
	s, ok := d.str()
	return nhisync.Str(s), ok
}

// time reads a time as time.Time's UnmarshalJSON does (RFC 3339).
func (d *outboxDecoder) time(t *time.Time) error {
	start := d.i
	if _, ok := d.rawStr(); !ok {
		return errSlowOutbox
	}
	return t.UnmarshalJSON(d.b[start:d.i])
}
