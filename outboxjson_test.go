package nhisync

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// anyTime draws times in zones of any offset, years 0-9999 in UTC and
// now and then beyond (which encoding/json refuses, as it does an offset
// of a day or more).
func anyTime() *rapid.Generator[time.Time] {
	return rapid.Custom(func(t *rapid.T) time.Time {
		if rapid.IntRange(0, 9).Draw(t, "zero") == 0 {
			return time.Time{}
		}
		year := rapid.IntRange(0, 9999).Draw(t, "year")
		if rapid.IntRange(0, 19).Draw(t, "far") == 0 {
			year = rapid.SampledFrom([]int{-1, 10000, 12345}).Draw(t, "far year")
		}
		tm := time.Date(year, time.Month(rapid.IntRange(1, 12).Draw(t, "month")), rapid.IntRange(1, 31).Draw(t, "day"),
			rapid.IntRange(0, 23).Draw(t, "hour"), rapid.IntRange(0, 59).Draw(t, "min"), rapid.IntRange(0, 59).Draw(t, "sec"),
			rapid.SampledFrom([]int{0, 1, 1000, 120000000, 999999999, 500}).Draw(t, "nsec"), time.UTC)
		if rapid.Bool().Draw(t, "zoned") {
			off := rapid.SampledFrom([]int{3600, -5*3600 - 30*60, 14 * 3600, 23*3600 + 59*60, 24 * 3600, -25 * 3600, 100 * 3600, 61}).Draw(t, "offset")
			tm = tm.In(time.FixedZone("z", off))
		}
		return tm
	})
}

func anyOutboxWrite() *rapid.Generator[*OutboxWrite] {
	return rapid.Custom(func(t *rapid.T) *OutboxWrite {
		str := func(label string) string {
			if rapid.Bool().Draw(t, label+" empty") {
				return ""
			}
			return anyString().Draw(t, label)
		}
		w := &OutboxWrite{ID: rapid.Int64().Draw(t, "id"), System: str("system"), ExternalID: str("external id"),
			RecordID: rapid.SampledFrom([]int64{0, 1, -5, 1 << 53, -1 << 63}).Draw(t, "record id"), Kind: str("kind"),
			Record: str("record"), Field: str("field"), Old: anyValue().Draw(t, "old"), New: anyValue().Draw(t, "new"),
			Create: rapid.Bool().Draw(t, "create"), Status: str("status"), ApprovalID: rapid.SampledFrom([]int64{0, 7, -1}).Draw(t, "approval"),
			Cause: str("cause"), Rule: str("rule"), Attempts: rapid.IntRange(-1, 1<<40).Draw(t, "attempts"),
			NextAt: anyTime().Draw(t, "next at"), LastError: str("last error"), Created: anyTime().Draw(t, "created"),
			Counts: rapid.Bool().Draw(t, "counts")}
		switch rapid.IntRange(0, 2).Draw(t, "values kind") {
		case 1:
			w.Values = map[string]Value{} // empty but not nil: omitted, as json omits it
		case 2:
			w.Values = map[string]Value{}
			for range rapid.IntRange(1, 4).Draw(t, "values") {
				w.Values[str("value name")] = anyValue().Draw(t, "value")
			}
		}
		return w
	})
}

// TestOutboxWriteJSONMatchesJSON: AppendJSON writes exactly the bytes
// encoding/json writes for any write it encodes, and declines exactly the
// ones encoding/json refuses.
func TestOutboxWriteJSONMatchesJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := anyOutboxWrite().Draw(t, "write")
		want, err := json.Marshal(w)
		got, ok := w.AppendJSON([]byte("xy"))
		if err != nil {
			if ok {
				t.Fatalf("AppendJSON encoded what encoding/json refuses (%v):\n%s", err, got)
			}
			return
		}
		if !ok || string(got[:2]) != "xy" || !bytes.Equal(got[2:], want) {
			t.Fatalf("AppendJSON (ok %v)\n got %s\nwant xy%s", ok, got, want)
		}
	})
}

func BenchmarkOutboxWriteJSON(b *testing.B) {
	at := time.Date(2026, 11, 30, 5, 16, 24, 271739041, time.UTC)
	w := &OutboxWrite{ID: 1234567, System: "cmdb", ExternalID: "00052439-0c36-4961-645a-a8585268b3e8", RecordID: 98765,
		Kind: "service_account", Record: "aws/svc-0397e6a4d1aa21b7", Field: "owner", Old: Str("team1867@example.com"),
		New: Str("team0042@example.com"), Status: OutboxReady, Cause: "idp", Rule: "idp: priority", NextAt: at, Created: at}
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = w.AppendJSON(buf[:0])
		}
	})
}
