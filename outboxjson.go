package nhisync

import (
	"slices"
	"strconv"
	"time"
)

// AppendJSON appends w's JSON exactly as encoding/json.Marshal writes it
// (same member order, omitempty, string escaping with HTML-safe escapes),
// without reflection: a store keeps each queued write as this JSON, and a
// first pass queues one for every value a system holds otherwise than
// golden (104,105 at 1M NHIs), all marshalled within its commits. It
// reports false for what it does not encode the same way (a time
// encoding/json refuses: a year outside 0-9999, or a zone offset of a day
// or more); the caller then falls back to encoding/json.
// TestOutboxWriteJSONMatchesJSON proves the identity.
func (w *OutboxWrite) AppendJSON(b []byte) ([]byte, bool) {
	if !jsonTime(w.NextAt) || !jsonTime(w.Created) {
		return b, false
	}
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, w.ID, 10)
	b = append(b, `,"system":`...)
	b = appendJSONString(b, w.System)
	b = append(b, `,"external_id":`...)
	b = appendJSONString(b, w.ExternalID)
	b = append(b, `,"record_id":`...)
	b = strconv.AppendInt(b, w.RecordID, 10)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, w.Kind)
	b = append(b, `,"record":`...)
	b = appendJSONString(b, w.Record)
	b = append(b, `,"field":`...)
	b = appendJSONString(b, w.Field)
	b = append(b, `,"old":`...)
	b = appendJSONValue(b, w.Old)
	b = append(b, `,"new":`...)
	b = appendJSONValue(b, w.New)
	if w.Create {
		b = append(b, `,"create":true`...)
	}
	if len(w.Values) > 0 {
		// encoding/json writes a map's members in the byte order of
		// their keys.
		b = append(b, `,"values":{`...)
		keys := make([]string, 0, len(w.Values))
		for k := range w.Values {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONValue(b, w.Values[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"status":`...)
	b = appendJSONString(b, w.Status)
	if w.ApprovalID != 0 {
		b = append(b, `,"approval_id":`...)
		b = strconv.AppendInt(b, w.ApprovalID, 10)
	}
	b = append(b, `,"cause":`...)
	b = appendJSONString(b, w.Cause)
	if w.Rule != "" {
		b = append(b, `,"rule":`...)
		b = appendJSONString(b, w.Rule)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(w.Attempts), 10)
	b = append(b, `,"next_at":"`...)
	b = w.NextAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if w.LastError != "" {
		b = append(b, `,"last_error":`...)
		b = appendJSONString(b, w.LastError)
	}
	b = append(b, `,"created":"`...)
	b = w.Created.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if w.Counts {
		b = append(b, `,"counts":true`...)
	}
	return append(b, '}'), true
}

// jsonTime reports whether encoding/json marshals t (as RFC 3339 with
// nanoseconds): a four-digit year and a zone offset under a day.
func jsonTime(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*3600 && off < 24*3600
}
