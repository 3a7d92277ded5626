package nhisync_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/nhisync/nhisync"
)

func TestValueNoValueForms(t *testing.T) {
	for name, v := range map[string]nhisync.Value{
		"zero":         {},
		"empty string": nhisync.Str(""),
		"blank":        nhisync.Str("  \t"),
		"empty set":    nhisync.SetOf(),
		"blank set":    nhisync.SetOf(" ", ""),
	} {
		if !v.IsZero() {
			t.Errorf("%s is not the zero value", name)
		}
		if !v.Equal(nhisync.Value{}) {
			t.Errorf("%s does not equal no value", name)
		}
	}
}

func TestSetOfIsOrderFree(t *testing.T) {
	a := nhisync.SetOf("b", " a", "b", "c ")
	b := nhisync.SetOf("c", "a", "b")
	if !a.Equal(b) || a.String() != "a, b, c" {
		t.Fatalf("SetOf = %q, %q", a, b)
	}
	if nhisync.SetOf("a").Equal(nhisync.Str("a")) {
		t.Fatal("a set equals a scalar")
	}
}

// TestValueEqualEveryForm: Equal, over every form a value takes (built,
// canonical, decoded from its binary form), is what it says: two no
// values are equal however built; otherwise a scalar equals a scalar of
// the same text and a set a set of the same elements, never each other.
func TestValueEqualEveryForm(t *testing.T) {
	var vs []nhisync.Value
	for _, v := range []nhisync.Value{{}, nhisync.Str(""), nhisync.Str("a"), nhisync.Str("b"), nhisync.Str("a,b"),
		nhisync.SetOf(), nhisync.SetOf("a"), nhisync.SetOf("b"), nhisync.SetOf("a", "b"), nhisync.SetOf("b", "a"),
		nhisync.Malformed("cut short"), nhisync.TypeSet.Canonical(nhisync.Str("a")), nhisync.TypeSet.Canonical(nhisync.Str("")),
		nhisync.TypeString.Canonical(nhisync.SetOf("a"))} {
		vs = append(vs, v)
		for _, ty := range []nhisync.FieldType{nhisync.TypeString, nhisync.TypeSet} {
			if back, _, ok := ty.ReadBinary(string(v.AppendBinary(nil))); ok {
				vs = append(vs, back)
			}
		}
	}
	want := func(a, b nhisync.Value) bool {
		if a.IsZero() || b.IsZero() {
			return a.IsZero() && b.IsZero()
		}
		return a.IsSet() == b.IsSet() && a.Text() == b.Text() && strings.Join(a.Elems(), "\x00") == strings.Join(b.Elems(), "\x00") &&
			len(a.Elems()) == len(b.Elems())
	}
	for _, a := range vs {
		for _, b := range vs {
			if got := a.Equal(b); got != want(a, b) {
				t.Errorf("%#v.Equal(%#v) = %v, want %v", a, b, got, want(a, b))
			}
		}
	}
}

func TestCanonicalAndCheck(t *testing.T) {
	for _, tc := range []struct {
		typ     nhisync.FieldType
		values  []string
		in      nhisync.Value
		want    nhisync.Value
		invalid bool
	}{
		{typ: nhisync.TypeInt, in: nhisync.Str("007"), want: nhisync.Str("7")},
		{typ: nhisync.TypeInt, in: nhisync.Str("seven"), want: nhisync.Str("seven"), invalid: true},
		{typ: nhisync.TypeBool, in: nhisync.Str("Yes"), want: nhisync.Str("true")},
		{typ: nhisync.TypeBool, in: nhisync.Str("0"), want: nhisync.Str("false")},
		{typ: nhisync.TypeBool, in: nhisync.Str("maybe"), want: nhisync.Str("maybe"), invalid: true},
		{typ: nhisync.TypeTime, in: nhisync.Str("2026-01-02T03:04:05+02:00"), want: nhisync.Str("2026-01-02T01:04:05Z")},
		{typ: nhisync.TypeTime, in: nhisync.Str("2026-01-02"), want: nhisync.Str("2026-01-02T00:00:00Z")},
		{typ: nhisync.TypeTime, in: nhisync.Str("yesterday"), want: nhisync.Str("yesterday"), invalid: true},
		{typ: nhisync.TypeEnum, values: []string{"a", "b"}, in: nhisync.Str("b"), want: nhisync.Str("b")},
		{typ: nhisync.TypeEnum, values: []string{"a", "b"}, in: nhisync.Str("c"), want: nhisync.Str("c"), invalid: true},
		{typ: nhisync.TypeSet, in: nhisync.Str("x"), want: nhisync.SetOf("x")},
		{typ: nhisync.TypeString, in: nhisync.SetOf("x", "y"), want: nhisync.SetOf("x", "y"), invalid: true},
	} {
		got := tc.typ.Canonical(tc.in)
		if !got.Equal(tc.want) {
			t.Errorf("%s.Canonical(%v) = %v, want %v", tc.typ, tc.in, got, tc.want)
		}
		if msg := tc.typ.Check(got, tc.values); (msg != "") != tc.invalid {
			t.Errorf("%s.Check(%v) = %q, invalid want %v", tc.typ, got, msg, tc.invalid)
		}
	}
}

// TestCanonicalKeepsCanonicalText: an int or time read in canonical form
// is kept as read, without a new string per value (a read canonicalises
// every value of every record); others are still rewritten.
func TestCanonicalKeepsCanonicalText(t *testing.T) {
	for _, tc := range []struct {
		typ     nhisync.FieldType
		in, out string
	}{
		{nhisync.TypeInt, "1234567", "1234567"},
		{nhisync.TypeInt, "-9223372036854775808", "-9223372036854775808"},
		{nhisync.TypeInt, "+12345", "12345"},
		{nhisync.TypeInt, "0012345", "12345"},
		{nhisync.TypeTime, "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"},
		{nhisync.TypeTime, "2026-01-02T03:04:05.123456789Z", "2026-01-02T03:04:05.123456789Z"},
		{nhisync.TypeTime, "2026-01-02T03:04:05.120Z", "2026-01-02T03:04:05.12Z"},
		{nhisync.TypeTime, "2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05Z"},
		{nhisync.TypeTime, "2026-01-02 03:04:05", "2026-01-02T03:04:05Z"},
	} {
		in := nhisync.Str(tc.in)
		if got := tc.typ.Canonical(in); got.Text() != tc.out || got.IsSet() {
			t.Errorf("%s.Canonical(%q) = %v, want %q", tc.typ, tc.in, got, tc.out)
		}
		if tc.in != tc.out {
			continue
		}
		if n := testing.AllocsPerRun(100, func() { in = tc.typ.Canonical(in) }); n != 0 {
			t.Errorf("%s.Canonical(%q) allocates %v times, want 0: the text is canonical", tc.typ, tc.in, n)
		}
	}
}

func TestValueJSONRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var v nhisync.Value
		if rapid.Bool().Draw(t, "set") {
			v = nhisync.SetOf(rapid.SliceOf(rapid.String()).Draw(t, "elems")...)
		} else {
			v = nhisync.Str(rapid.String().Draw(t, "text"))
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var back nhisync.Value
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !back.Equal(v) {
			t.Fatalf("%s round-trips to %v, want %v", b, back, v)
		}
	})
}

func TestAppendBinaryIsUnambiguous(t *testing.T) {
	enc := func(vs ...nhisync.Value) string {
		var b []byte
		for _, v := range vs {
			b = v.AppendBinary(b)
		}
		return string(b)
	}
	pairs := [][2]string{
		{enc(nhisync.Str("ab"), nhisync.Str("c")), enc(nhisync.Str("a"), nhisync.Str("bc"))},
		{enc(nhisync.SetOf("a,b")), enc(nhisync.SetOf("a", "b"))},
		{enc(nhisync.Str("a")), enc(nhisync.SetOf("a"))},
		{enc(nhisync.Value{}, nhisync.Str("a")), enc(nhisync.Str("a"), nhisync.Value{})},
	}
	for i, p := range pairs {
		if p[0] == p[1] {
			t.Errorf("pair %d encodes alike: %q", i, p[0])
		}
	}
}

// ReadBinary is AppendBinary's inverse for every value canonical for its
// type, so a pass may keep observations as the bytes it hashed.
func TestReadBinaryRoundTrips(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		types := []nhisync.FieldType{nhisync.TypeString, nhisync.TypeSet, nhisync.TypeInt, nhisync.TypeRefs}
		text := rapid.OneOf(rapid.String(), rapid.SampledFrom([]string{"", " ", "1:a", "2", ":", "\x00", "a\x00b"}))
		var ts []nhisync.FieldType
		var vs []nhisync.Value
		var b []byte
		for range rapid.IntRange(0, 6).Draw(t, "n") {
			ft := rapid.SampledFrom(types).Draw(t, "type")
			var v nhisync.Value
			switch rapid.IntRange(0, 3).Draw(t, "shape") {
			case 0:
				v = nhisync.Str(text.Draw(t, "s"))
			case 1:
				v = nhisync.SetOf(rapid.SliceOf(text).Draw(t, "elems")...)
			case 2:
				v = nhisync.Malformed(text.Draw(t, "reason"))
			}
			v = ft.Canonical(v)
			ts, vs = append(ts, ft), append(vs, v)
			b = v.AppendBinary(b)
		}
		enc := string(b)
		skipped := enc
		for range ts {
			var ok bool
			if skipped, ok = nhisync.SkipBinary(skipped); !ok {
				t.Fatalf("SkipBinary stops in %q", b)
			}
		}
		if len(skipped) != 0 {
			t.Fatalf("SkipBinary leaves %q", skipped)
		}
		for i, ft := range ts {
			got, rest, ok := ft.ReadBinary(enc)
			if !ok {
				t.Fatalf("value %d (%#v) does not decode from %q", i, vs[i], b)
			}
			if !got.Equal(vs[i]) || got.IsSet() != vs[i].IsSet() || got.Text() != vs[i].Text() {
				t.Fatalf("value %d: got %#v, want %#v", i, got, vs[i])
			}
			enc = rest
		}
		if len(enc) != 0 {
			t.Fatalf("%q left over", enc)
		}
	})
}

func TestReadBinaryRefusesTruncated(t *testing.T) {
	full := string(nhisync.SetOf("ab", "c").AppendBinary(nhisync.Str("xyz").AppendBinary(nil)))
	for i := range len(full) - 1 {
		b := full[:i]
		_, rest, ok := nhisync.TypeString.ReadBinary(b)
		if ok {
			_, _, ok = nhisync.TypeSet.ReadBinary(rest)
		}
		if ok {
			t.Errorf("%q decodes as two values", b)
		}
	}
}

func TestHLCNeverRepeatsOrGoesBack(t *testing.T) {
	c := &nhisync.FakeClock{T: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := &nhisync.HLC{Clock: c}
	a := h.Now()
	b := h.Now() // same wall time
	c.T = c.T.Add(-time.Hour)
	d := h.Now() // the wall clock stepped back
	if !b.After(a) || !d.After(b) {
		t.Fatalf("HLC readings %v %v %v are not increasing", a, b, d)
	}
	h2 := &nhisync.HLC{Clock: c}
	h2.Observe(d)
	if !h2.Now().After(d) {
		t.Fatal("Observe did not carry the time over")
	}
}

func TestRecordNames(t *testing.T) {
	match := func(k string) (int, bool) {
		return map[string]int{"service_account": 2, "app": 1}[k], k == "service_account" || k == "app"
	}
	key := nhisync.DisplayKey([]string{"aws", "team/bot x"})
	if key != "aws/team%2Fbot%20x" {
		t.Fatalf("DisplayKey = %q", key)
	}
	kind, mk, err := nhisync.ParseRecordName("service_account/"+key, match)
	if err != nil || kind != "service_account" || mk != nhisync.NormalizeKey([]string{"AWS", " Team/Bot X "}) {
		t.Fatalf("ParseRecordName = %q %q %v", kind, mk, err)
	}
	for _, bad := range []string{"service_account", "service_account/aws", "nope/x", "app/a/b"} {
		if _, _, err := nhisync.ParseRecordName(bad, match); nhisync.ErrorCode(err) != nhisync.EINVALID {
			t.Errorf("ParseRecordName(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestGuardLimit(t *testing.T) {
	for _, tc := range []struct {
		g     nhisync.Guard
		total int
		want  int
	}{
		{nhisync.Guard{}, 100, 25},
		{nhisync.Guard{}, 1000, 100},
		{nhisync.Guard{Max: 5}, 1000, 5},
		{nhisync.Guard{Percent: 1}, 1000, 10},
	} {
		if got := tc.g.Limit(tc.total); got != tc.want {
			t.Errorf("%+v.Limit(%d) = %d, want %d", tc.g, tc.total, got, tc.want)
		}
	}
	if (nhisync.Guard{Off: true}).Limit(10) < 1<<30 {
		t.Error("guard off still limits")
	}
}

func TestAuditSealChains(t *testing.T) {
	a := &nhisync.AuditEntry{Seq: 1, Time: time.Unix(0, 1).UTC(), Action: nhisync.ActAccepted, New: nhisync.Str("x")}
	leaf := a.Seal("")
	b := &nhisync.AuditEntry{Seq: 2, Time: time.Unix(0, 2).UTC(), Action: nhisync.ActRefused}
	b.Seal(a.Hash)
	if b.PrevHash != a.Hash || a.Hash == "" || string(leaf) != string(a.LeafBytes()) {
		t.Fatalf("entries do not chain: %+v %+v", a, b)
	}
	a.New = nhisync.Str("y")
	before := a.Hash
	a.Seal("")
	if a.Hash == before {
		t.Fatal("editing an entry did not change its hash")
	}
	if s := nhisync.SensitiveValue([]byte("k1"), nhisync.Str("hunter2")); s.Text() == "hunter2" || len(s.Text()) != len(nhisync.SensitivePrefix)+64 {
		t.Fatalf("SensitiveValue = %q", s)
	}
}

// TestSensitiveValueIsKeyed (issue 6 finding 10): the audit log's hash of a
// sensitive value is an HMAC under the audit secret, not a plain SHA-256
// anyone can test guesses against.
func TestSensitiveValueIsKeyed(t *testing.T) {
	v := nhisync.Str("payments team")
	b, _ := v.MarshalJSON()
	plain := sha256.Sum256(b)
	a1 := nhisync.SensitiveValue([]byte("secret one, thirty-two bytes....."), v)
	a2 := nhisync.SensitiveValue([]byte("secret two, thirty-two bytes....."), v)
	if a1.Equal(a2) {
		t.Error("two secrets give the same hash: the value is not keyed")
	}
	if strings.Contains(a1.Text(), hex.EncodeToString(plain[:])) {
		t.Error("the sensitive value is kept as its plain SHA-256")
	}
	if !a1.Equal(nhisync.SensitiveValue([]byte("secret one, thirty-two bytes....."), v)) {
		t.Error("the same secret and value give two hashes")
	}
}

// TestMatchKeyNormalisation (issue 6 finding 5): "café" in NFC and NFD,
// and a name with a zero-width space or a soft hyphen, are one key.
func TestMatchKeyNormalisation(t *testing.T) {
	want := nhisync.NormalizeKey([]string{"aws", "café-bot"})
	for _, v := range []string{"cafe\u0301-bot", "café-bot\u200b", " CAFÉ-BOT ", "ca\u00adfé-bot", "\ufeffcafé-bot", "café\u2060-bot"} {
		if got := nhisync.NormalizeKey([]string{"AWS", v}); got != want {
			t.Errorf("%q keys as %q, want %q", v, got, want)
		}
	}
	for _, r := range []rune{'\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u034f', '\ufe0f', '\U000e0001'} {
		if !nhisync.IsDefaultIgnorable(r) {
			t.Errorf("%U is default-ignorable", r)
		}
	}
	for _, r := range []rune{'a', ' ', '\u0600', '\u00a0', '\u0301'} {
		if nhisync.IsDefaultIgnorable(r) {
			t.Errorf("%U is not default-ignorable", r)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.String().Draw(t, "s")
		k := nhisync.NormalizeMatchValue(s)
		if nhisync.NormalizeMatchValue(k) != k {
			t.Fatalf("not idempotent: %q → %q → %q", s, k, nhisync.NormalizeMatchValue(k))
		}
	})
}

// TestValueProblem (issue 6 finding 5): NUL bytes, invalid UTF-8 and
// Malformed values fail the type check of every field type, with reasons.
func TestValueProblem(t *testing.T) {
	for _, tc := range []struct {
		v    nhisync.Value
		want string
	}{
		{nhisync.Str("a\x00b"), "holds a NUL byte (at byte 2)"},
		{nhisync.Str("b\xffd"), "is not valid UTF-8 (byte 2 is 0xff)"},
		{nhisync.Malformed("cut short"), "cut short"},
		{nhisync.SetOf("ok", "x\x00"), "NUL byte"},
		{nhisync.Str("fine ünïcødé"), ""},
		{nhisync.SetOf("a", "b"), ""},
	} {
		v, want := tc.v, tc.want
		if got := v.Problem(); (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("%q: Problem %q, want %q", v.String(), got, want)
		}
		if want != "" {
			for _, typ := range nhisync.FieldTypes {
				if typ.Check(typ.Canonical(v), []string{"x"}) == "" {
					t.Errorf("%q passes the %s type check", v.String(), typ)
				}
			}
		}
	}
	if s := nhisync.Malformed("why").String(); s != "(malformed: why)" {
		t.Errorf("String %q", s)
	}
}
