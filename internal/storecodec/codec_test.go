package storecodec

import (
	"encoding/hex"
	"fmt"
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

// genText draws strings that often repeat within one blob (the rule
// texts and sources of a record's fields), or any string.
func genText() *rapid.Generator[string] {
	return rapid.OneOf(rapid.SampledFrom([]string{"", "idp", "cmdb", "priority: the golden value was empty"}), rapid.String())
}

// genNear draws a time that often repeats one drawn before in the blob
// (pool), or a new one.
func genNear(pool *[]time.Time) *rapid.Generator[time.Time] {
	return rapid.Custom(func(t *rapid.T) time.Time {
		var u time.Time
		switch how := rapid.IntRange(0, 2).Draw(t, "how"); {
		case how == 0 && len(*pool) > 0:
			u = rapid.SampledFrom(*pool).Draw(t, "earlier")
			// Equal but in another zone: it is the instant that counts.
			return u.In(time.FixedZone("y", 3600))
		case how == 1 && len(*pool) > 0:
			// Close to one before (written as a delta), or not so close.
			u = rapid.SampledFrom(*pool).Draw(t, "near")
			if u.IsZero() {
				return u
			}
			u = u.Add(time.Duration(rapid.Int64Range(-1<<62, 1<<62).Draw(t, "by")) >> rapid.IntRange(0, 62).Draw(t, "shift"))
		default:
			u = genTime().Draw(t, "new")
		}
		*pool = append(*pool, u)
		return u
	})
}

func genName() *rapid.Generator[string] {
	return rapid.OneOf(rapid.SampledFrom([]string{"name", "owner", "entitlements", ""}), rapid.String())
}

func genLink() *rapid.Generator[*nhisync.Link] {
	return rapid.Custom(func(t *rapid.T) *nhisync.Link {
		var pool []time.Time
		l := &nhisync.Link{
			FirstSeen: genNear(&pool).Draw(t, "first"), SeenAt: genNear(&pool).Draw(t, "seen"),
			GoneAt: genNear(&pool).Draw(t, "gone"), Modified: genNear(&pool).Draw(t, "modified"),
		}
		for range rapid.IntRange(0, 12).Draw(t, "fields") {
			name := genName().Draw(t, "field")
			if rapid.IntRange(0, 9).Draw(t, "nil") == 0 {
				l.Fields = setField(l.Fields, name, nil)
				continue
			}
			fs := &nhisync.FieldState{Shadow: genValue().Draw(t, "shadow"), Since: genNear(&pool).Draw(t, "since"),
				SourceTime: genNear(&pool).Draw(t, "source"), Actor: genText().Draw(t, "actor")}
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
		var pool []time.Time
		r := &nhisync.Record{Created: genNear(&pool).Draw(t, "created"), Updated: genNear(&pool).Draw(t, "updated")}
		for range rapid.IntRange(0, 12).Draw(t, "fields") {
			name := genName().Draw(t, "field")
			if rapid.IntRange(0, 9).Draw(t, "nil") == 0 {
				r.Fields = setField(r.Fields, name, nil)
				continue
			}
			r.Fields = setField(r.Fields, name, &nhisync.Golden{Value: genValue().Draw(t, "value"),
				Source: genText().Draw(t, "source"), Actor: genText().Draw(t, "actor"), Rule: genText().Draw(t, "rule"),
				At: genNear(&pool).Draw(t, "at"), SourceTime: genNear(&pool).Draw(t, "source_time")})
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

// The encoders of each version: the current one and version 1, which
// stores written before still hold.
var (
	linkEncoders   = map[string]func([]byte, *nhisync.Link) []byte{"v2": AppendLink, "v1": appendLinkV1}
	recordEncoders = map[string]func([]byte, *nhisync.Record) []byte{"v2": AppendRecord, "v1": appendRecordV1}
)

func TestLinkStateRoundTrip(t *testing.T) {
	for version, encode := range linkEncoders {
		t.Run(version, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				want := genLink().Draw(t, "link")
				var got nhisync.Link
				var d Decoder
				// A few bytes before the blob: appending keeps them.
				b := encode([]byte("xy"), want)
				if string(b[:2]) != "xy" {
					t.Fatalf("the encoder overwrote what it appended to")
				}
				if err := d.DecodeLink(b[2:], &got); err != nil {
					t.Fatalf("decode: %v", err)
				}
				checkLink(t, want, &got)
				// The decoder is reused across rows: a second blob decodes
				// the same with what the first remembered.
				var again nhisync.Link
				if err := d.DecodeLink(encode(nil, want), &again); err != nil {
					t.Fatalf("decode again: %v", err)
				}
				checkLink(t, want, &again)
			})
		})
	}
}

func checkLink(t *rapid.T, want, got *nhisync.Link) {
	if diff := cmp.Diff(want, got, codecOpts); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	// A Report set to a zero Value stays set.
	for name, fs := range want.Fields {
		if fs != nil && (fs.Report == nil) != (got.Fields[name].Report == nil) {
			t.Fatalf("field %q: Report %v came back as %v", name, fs.Report, got.Fields[name].Report)
		}
	}
}

func TestRecordStateRoundTrip(t *testing.T) {
	for version, encode := range recordEncoders {
		t.Run(version, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				want := genRecord().Draw(t, "record")
				var d Decoder
				for range 2 {
					var got nhisync.Record
					if err := d.DecodeRecord(encode(nil, want), &got); err != nil {
						t.Fatalf("decode: %v", err)
					}
					if diff := cmp.Diff(want, &got, codecOpts); diff != "" {
						t.Fatalf("round trip (-want +got):\n%s", diff)
					}
				}
			})
		})
	}
}

// TestStateManyRefs round-trips a record with more distinct strings and
// times than a blob remembers, each used again after the limit.
func TestStateManyRefs(t *testing.T) {
	base := time.Date(2026, 11, 30, 5, 0, 0, 123, time.UTC)
	r := &nhisync.Record{Created: base, Updated: base.Add(time.Second), Fields: map[string]*nhisync.Golden{}}
	for i := range 3 * maxRefs {
		k := i % (2 * maxRefs) // the second round refers to the first's
		r.Fields[fmt.Sprintf("f%03d", i)] = &nhisync.Golden{Value: nhisync.Str("v"), Source: fmt.Sprintf("s%d", k),
			Rule: "rule", Actor: fmt.Sprintf("a%d", k), At: base.Add(time.Duration(k) * time.Minute), SourceTime: base}
	}
	var got nhisync.Record
	var d Decoder
	if err := d.DecodeRecord(AppendRecord(nil, r), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, &got, codecOpts); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
}

// TestStateGolden pins the bytes of each version: a blob a store holds
// must read the same forever.
func TestStateGolden(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	rec := &nhisync.Record{Created: at, Updated: at, Fields: map[string]*nhisync.Golden{
		"name":  {Value: nhisync.Str("bot"), Source: "idp", Rule: "r", At: at},
		"owner": {Value: nhisync.Str("o"), Source: "idp", Rule: "r", At: at, Actor: "ana", SourceTime: at.Add(time.Second)},
		"tags":  nil,
	}}
	link := &nhisync.Link{FirstSeen: at, SeenAt: at, Fields: map[string]*nhisync.FieldState{
		"name": {Shadow: nhisync.Str("bot"), Asserted: nhisync.Str("bot"), Since: at},
		"tags": {Shadow: nhisync.SetOf("a", "b"), Asserted: nhisync.Str("x"), Actor: "ana", Report: &nhisync.Value{}},
	}}
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"record v1", appendRecordV1(nil, rec),
			"0101cad6b9950d0601cad6b9950d060304" + "6e616d65" + "00" + "0103626f74" + "03696470" + "0172" + "01cad6b9950d06" +
				"056f776e6572" + "06" + "01016f" + "03696470" + "0172" + "01cad6b9950d06" + "03616e61" + "01ccd6b9950d06" + "0474616773" + "01"},
		{"record v2", AppendRecord(nil, rec),
			"0201cad6b9950d06" + "03" + "03" + "046e616d65" + "00" + "0103626f74" + "06696470" + "0272" + "03" +
				"056f776e6572" + "06" + "01016f" + "01" + "03" + "03" + "06616e61" + "0280a8d6b907" + "0474616773" + "01"},
		{"link v1", appendLinkV1(nil, link),
			"0101cad6b9950d0601cad6b9950d06000002046e616d65" + "06" + "0103626f74" + "01cad6b9950d06" +
				"0474616773" + "30" + "0202016101620101" + "78" + "03616e61" + "00"},
		{"link v2", AppendLink(nil, link),
			"0201cad6b9950d06" + "03" + "00" + "00" + "02" + "046e616d65" + "06" + "0103626f74" + "03" +
				"0474616773" + "30" + "0202016101620101" + "78" + "06616e61" + "00"},
	}
	for _, tc := range tests {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	var d Decoder
	for _, b := range [][]byte{tests[0].got, tests[1].got} {
		var got nhisync.Record
		if err := d.DecodeRecord(b, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rec, &got, codecOpts); diff != "" {
			t.Errorf("record version %d (-want +got):\n%s", b[0], diff)
		}
	}
	for _, b := range [][]byte{tests[2].got, tests[3].got} {
		var got nhisync.Link
		if err := d.DecodeLink(b, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(link, &got, codecOpts); diff != "" {
			t.Errorf("link version %d (-want +got):\n%s", b[0], diff)
		}
	}
}

// TestStateCorrupt feeds every truncation and a flipped byte of valid
// states to the Decoder: it must report an error or decode, never panic
// or allocate without bound.
func TestStateCorrupt(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		record := rapid.Bool().Draw(t, "record")
		var b []byte
		v1 := rapid.Bool().Draw(t, "v1")
		switch {
		case record && v1:
			b = appendRecordV1(nil, genRecord().Draw(t, "rec"))
		case record:
			b = AppendRecord(nil, genRecord().Draw(t, "rec"))
		case v1:
			b = appendLinkV1(nil, genLink().Draw(t, "link"))
		default:
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
