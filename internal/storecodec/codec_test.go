package storecodec

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nhisync/nhisync"
	"pgregory.net/rapid"
)

var codecOpts = cmp.Options{
	cmp.Comparer(func(a, b nhisync.Value) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

func genTime() *rapid.Generator[time.Time] {
	return rapid.Custom(func(t *rapid.T) time.Time {
		if rapid.Bool().Draw(t, "zero") {
			return time.Time{}
		}
		// Far past and far future included: the encoding is not bounded
		// by int64 nanoseconds.
		sec := rapid.Int64Range(-62135596800, 253402300799).Draw(t, "sec")
		nsec := rapid.Int64Range(0, 999999999).Draw(t, "nsec")
		return time.Unix(sec, nsec).In(time.FixedZone("z", rapid.IntRange(-12, 12).Draw(t, "zone")*3600))
	})
}

func genValue() *rapid.Generator[nhisync.Value] {
	text := rapid.OneOf(rapid.String(), rapid.StringMatching(`[a-z@.:\- ]{0,12}`), rapid.SampledFrom([]string{"", " ", "\x00", "\xff\xfe"}))
	return rapid.Custom(func(t *rapid.T) nhisync.Value {
		switch rapid.IntRange(0, 3).Draw(t, "shape") {
		case 0:
			return nhisync.Value{}
		case 1:
			return nhisync.Str(text.Draw(t, "text"))
		case 2:
			return nhisync.SetOf()
		default:
			return nhisync.SetOf(rapid.SliceOfN(text, 0, 5).Draw(t, "elems")...)
		}
	})
}

func genName() *rapid.Generator[string] {
	return rapid.OneOf(rapid.SampledFrom([]string{"name", "owner", "entitlements", ""}), rapid.String())
}

func genLink() *rapid.Generator[*nhisync.Link] {
	return rapid.Custom(func(t *rapid.T) *nhisync.Link {
		l := &nhisync.Link{
			FirstSeen: genTime().Draw(t, "first"), SeenAt: genTime().Draw(t, "seen"),
			GoneAt: genTime().Draw(t, "gone"), Modified: genTime().Draw(t, "modified"),
		}
		for range rapid.IntRange(0, 6).Draw(t, "fields") {
			name := genName().Draw(t, "field")
			if rapid.IntRange(0, 9).Draw(t, "nil") == 0 {
				l.Fields = setField(l.Fields, name, nil)
				continue
			}
			fs := &nhisync.FieldState{Shadow: genValue().Draw(t, "shadow"), Since: genTime().Draw(t, "since"),
				SourceTime: genTime().Draw(t, "source"), Actor: rapid.String().Draw(t, "actor")}
			if rapid.Bool().Draw(t, "same") {
				fs.Asserted = fs.Shadow
			} else {
				fs.Asserted = genValue().Draw(t, "asserted")
			}
			if rapid.Bool().Draw(t, "report") {
				v := genValue().Draw(t, "reported")
				fs.Report = &v
			}
			l.Fields = setField(l.Fields, name, fs)
		}
		return l
	})
}

func genRecord() *rapid.Generator[*nhisync.Record] {
	return rapid.Custom(func(t *rapid.T) *nhisync.Record {
		r := &nhisync.Record{Created: genTime().Draw(t, "created"), Updated: genTime().Draw(t, "updated")}
		for range rapid.IntRange(0, 6).Draw(t, "fields") {
			name := genName().Draw(t, "field")
			if rapid.IntRange(0, 9).Draw(t, "nil") == 0 {
				r.Fields = setField(r.Fields, name, nil)
				continue
			}
			r.Fields = setField(r.Fields, name, &nhisync.Golden{Value: genValue().Draw(t, "value"),
				Source: rapid.String().Draw(t, "source"), Actor: rapid.String().Draw(t, "actor"), Rule: rapid.String().Draw(t, "rule"),
				At: genTime().Draw(t, "at"), SourceTime: genTime().Draw(t, "source_time")})
		}
		return r
	})
}

func setField[V any](m map[string]V, k string, v V) map[string]V {
	if m == nil {
		m = map[string]V{}
	}
	m[k] = v
	return m
}

func TestLinkStateRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := genLink().Draw(t, "link")
		var got nhisync.Link
		var d Decoder
		if err := d.DecodeLink(AppendLink(nil, want), &got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if diff := cmp.Diff(want, &got, codecOpts); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
		// A Report set to a zero Value stays set.
		for name, fs := range want.Fields {
			if fs != nil && (fs.Report == nil) != (got.Fields[name].Report == nil) {
				t.Fatalf("field %q: Report %v came back as %v", name, fs.Report, got.Fields[name].Report)
			}
		}
	})
}

func TestRecordStateRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := genRecord().Draw(t, "record")
		var got nhisync.Record
		var d Decoder
		if err := d.DecodeRecord(AppendRecord(nil, want), &got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if diff := cmp.Diff(want, &got, codecOpts); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

// TestStateCorrupt feeds every truncation and a flipped byte of valid
// states to the Decoder: it must report an error or decode, never panic
// or allocate without bound.
func TestStateCorrupt(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		record := rapid.Bool().Draw(t, "record")
		var b []byte
		if record {
			b = AppendRecord(nil, genRecord().Draw(t, "rec"))
		} else {
			b = AppendLink(nil, genLink().Draw(t, "link"))
		}
		cut := rapid.IntRange(0, len(b)-1).Draw(t, "cut")
		var d Decoder
		if record {
			if err := d.DecodeRecord(b[:cut], &nhisync.Record{}); err == nil {
				t.Fatalf("a record state cut to %d of %d bytes decoded", cut, len(b))
			}
		} else if err := d.DecodeLink(b[:cut], &nhisync.Link{}); err == nil {
			t.Fatalf("a link state cut to %d of %d bytes decoded", cut, len(b))
		}
		flip := append([]byte(nil), b...)
		i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
		flip[i] ^= byte(rapid.IntRange(1, 255).Draw(t, "xor"))
		_ = d.DecodeLink(flip, &nhisync.Link{})
		_ = d.DecodeRecord(flip, &nhisync.Record{})
	})
}

func TestStateVersion(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", []byte{99, 0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		var d Decoder
		if err := d.DecodeLink(tc.b, &nhisync.Link{}); err == nil {
			t.Errorf("%s: decoded", tc.name)
		}
	}
}
