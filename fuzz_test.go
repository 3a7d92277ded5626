package nhisync_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/nhisync/nhisync"
)

// FuzzCanonical: canonical forms are fixed points, the type check never
// panics, and JSON carries a value unchanged.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"", " 0042 ", "+7", "yes", "OFF", "2026-01-02", "2026-01-02 03:04:05", "a,b, ,a", "x\x00y", "b\xffd", "\u00a0"} {
		f.Add(uint8(0), s)
		f.Add(uint8(5), s)
	}
	f.Fuzz(func(t *testing.T, typ uint8, s string) {
		ft := nhisync.FieldTypes[int(typ)%len(nhisync.FieldTypes)]
		for _, v := range []nhisync.Value{nhisync.Str(s), nhisync.SetOf(strings.Split(s, ",")...)} {
			c := ft.Canonical(v)
			if again := ft.Canonical(c); !again.Equal(c) {
				t.Fatalf("%s: Canonical(%q) = %q, then %q", ft, v.String(), c.String(), again.String())
			}
			msg := ft.Check(c, []string{"a", "b"})
			if c.Problem() != "" && msg == "" {
				t.Fatalf("%s: %q has a problem (%s) but passes the type check", ft, c.String(), c.Problem())
			}
			if !utf8.ValidString(s) {
				continue
			}
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			var back nhisync.Value
			if err := json.Unmarshal(b, &back); err != nil || !back.Equal(c) {
				t.Fatalf("JSON %s reads back as %q (%v), want %q", b, back.String(), err, c.String())
			}
		}
	})
}

// FuzzNormalizeKey: normalising twice changes nothing, a value can never
// forge the separator, and the result is NFC without default-ignorables.
func FuzzNormalizeKey(f *testing.F) {
	for _, s := range [][2]string{{"aws", "café"}, {"AWS", "cafe\u0301"}, {" x\u200b", "y\x1fz"}, {"\ufeff", "ß"}, {"İ", "Σ"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		k := nhisync.NormalizeKey([]string{a, b})
		parts := strings.Split(k, "\x1f")
		if len(parts) != 2 {
			t.Fatalf("key of %q, %q has %d parts", a, b, len(parts))
		}
		if again := nhisync.NormalizeKey(parts); again != k {
			t.Fatalf("not idempotent: %q → %q", k, again)
		}
		for _, p := range parts {
			if utf8.ValidString(p) && !norm.NFC.IsNormalString(p) {
				t.Fatalf("%q is not NFC", p)
			}
			for _, r := range p {
				if nhisync.IsDefaultIgnorable(r) {
					t.Fatalf("%q keeps %U", p, r)
				}
			}
		}
	})
}

// FuzzAuditLeaf: the leaf bytes decode to the entry they encode and encode
// again to the same bytes, so a verifier recomputing a leaf from a stored
// entry gets the hash that was signed.
func FuzzAuditLeaf(f *testing.F) {
	f.Add(int64(1), int64(0), "nhisync", "value.accepted", "aws/bot", "owner", "cmdb", "a@example.com", "pci,pii", "priority", "prev")
	f.Add(int64(-1), int64(1e18), "", "", "", "", "", "\u2028<>&", "", "\x00\x7f", "")
	f.Fuzz(func(t *testing.T, seq, nanos int64, actor, action, record, field, system, old, set, reason, prev string) {
		e := nhisync.AuditEntry{Seq: seq, Time: time.Unix(0, nanos), Actor: actor, Action: action, Record: record, Field: field,
			System: system, Old: nhisync.Str(old), New: nhisync.SetOf(strings.Split(set, ",")...), Reason: reason, PrevHash: prev}
		leaf := e.Seal(prev)
		var back nhisync.AuditEntry
		if err := json.Unmarshal(leaf, &back); err != nil {
			t.Fatalf("leaf %s does not decode: %v", leaf, err)
		}
		if got := back.LeafBytes(); string(got) != string(leaf) {
			t.Fatalf("leaf %s re-encodes as %s", leaf, got)
		}
		valid := true
		for _, s := range []string{actor, action, record, field, system, old, set, reason, prev} {
			valid = valid && utf8.ValidString(s)
		}
		if valid && (back.Actor != actor || back.Reason != reason || !back.Old.Equal(e.Old) || !back.New.Equal(e.New) || !back.Time.Equal(e.Time)) {
			t.Fatalf("entry %+v decodes as %+v", e, back)
		}
	})
}
