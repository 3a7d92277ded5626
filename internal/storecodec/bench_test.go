package storecodec

import (
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// benchRecord and benchLink are as a first pass writes them (the bench's
// estate): ten golden fields set from the first value heard, at the time
// of the pass, and a link asserting seven fields.
func benchRecord() *nhisync.Record {
	at := time.Date(2026, 11, 30, 5, 16, 24, 271739041, time.UTC)
	r := &nhisync.Record{Created: at, Updated: at, Fields: map[string]*nhisync.Golden{}}
	first := func(v nhisync.Value, source string) *nhisync.Golden {
		return &nhisync.Golden{Value: v, Source: source, Rule: nhisync.ReasonFirstValue, At: at}
	}
	r.Fields["name"] = first(nhisync.Str("svc-bd1146f0c52c1b83"), "catalog")
	r.Fields["platform"] = first(nhisync.Str("aws"), "catalog")
	r.Fields["owner"] = first(nhisync.Str("team1867@example.com"), "cmdb")
	r.Fields["lifecycle"] = first(nhisync.Str("active"), "cmdb")
	r.Fields["last_rotated"] = first(nhisync.Str("2025-01-18T10:35:33Z"), "idp")
	r.Fields["environment"] = first(nhisync.Str("staging"), "catalog")
	r.Fields["cost_center"] = first(nhisync.Str("CC-5717"), "cmdb")
	r.Fields["tier"] = first(nhisync.Str("4"), "catalog")
	r.Fields["classification"] = &nhisync.Golden{Value: nhisync.SetOf("confidential", "pci", "pii"), Source: "catalog", Rule: "merge", At: at, SourceTime: at.Add(21649107)}
	r.Fields["entitlements"] = &nhisync.Golden{Value: nhisync.SetOf("rotate-keys"), Source: "idp", Rule: "merge", At: at, SourceTime: at.Add(21647264)}
	return r
}

func benchLink() *nhisync.Link {
	at := time.Date(2026, 11, 30, 5, 16, 24, 271739041, time.UTC)
	since := at.Add(21649107)
	l := &nhisync.Link{FirstSeen: at, SeenAt: at, Fields: map[string]*nhisync.FieldState{}}
	for name, v := range map[string]nhisync.Value{
		"name": nhisync.Str("svc-bd1146f0c52c1b83"), "platform": nhisync.Str("aws"), "owner": nhisync.Str("team1867@example.com"),
		"environment": nhisync.Str("staging"), "cost_center": nhisync.Str("CC-5717"), "tier": nhisync.Str("4"),
		"classification": nhisync.SetOf("confidential", "pci", "pii"),
	} {
		l.Fields[name] = &nhisync.FieldState{Asserted: v, Since: since}
	}
	return l
}

func BenchmarkAppendRecord(b *testing.B) {
	r := benchRecord()
	for version, encode := range recordEncoders {
		b.Run(version, func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				buf = encode(buf[:0], r)
			}
			b.ReportMetric(float64(len(buf)), "bytes/record")
		})
	}
}

func BenchmarkAppendLink(b *testing.B) {
	l := benchLink()
	for version, encode := range linkEncoders {
		b.Run(version, func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				buf = encode(buf[:0], l)
			}
			b.ReportMetric(float64(len(buf)), "bytes/link")
		})
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	for version, encode := range recordEncoders {
		blob := encode(nil, benchRecord())
		b.Run(version, func(b *testing.B) {
			var d Decoder
			for b.Loop() {
				var r nhisync.Record
				if err := d.DecodeRecord(blob, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeLink(b *testing.B) {
	for version, encode := range linkEncoders {
		blob := encode(nil, benchLink())
		b.Run(version, func(b *testing.B) {
			var d Decoder
			for b.Loop() {
				var l nhisync.Link
				if err := d.DecodeLink(blob, &l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStateSize pins what version 2 saves on the bench's states.
func TestStateSize(t *testing.T) {
	sizes := []struct {
		name   string
		v1, v2 int
	}{
		{"record", len(appendRecordV1(nil, benchRecord())), len(AppendRecord(nil, benchRecord()))},
		{"link", len(appendLinkV1(nil, benchLink())), len(AppendLink(nil, benchLink()))},
	}
	want := map[string][2]int{"record": {774, 356}, "link": {274, 198}}
	for _, s := range sizes {
		if w := want[s.name]; s.v1 != w[0] || s.v2 != w[1] {
			t.Errorf("%s: %d bytes in version 1 and %d in version 2, want %d and %d", s.name, s.v1, s.v2, w[0], w[1])
		}
	}
}
