package ldap

import (
	"testing"
	"time"
)

func TestGeneralizedTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), "20260601120000Z"},
		{time.Date(2026, 3, 4, 3, 6, 7, 5e8, time.UTC), "20260304030607.5Z"},
		{time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", 7200)), "20260304030607Z"},
	} {
		got := formatGeneralized(tc.in)
		if got != tc.want {
			t.Errorf("formatGeneralized(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if back := generalizedTime(got); !back.Equal(tc.in) {
			t.Errorf("generalizedTime(%q) = %v, want %v", got, back, tc.in)
		}
	}
	if !generalizedTime("2026-01-01").IsZero() {
		t.Errorf("a non-GeneralizedTime read as a time")
	}
}

// TestObjectGUID: Active Directory's binary objectGUID reads as its usual
// text (first three groups little-endian) and a filter finds it again.
func TestObjectGUID(t *testing.T) {
	raw := []byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	const text = "00112233-4455-6677-8899-aabbccddeeff"
	if got := guidText(raw); got != text {
		t.Errorf("guidText = %s, want %s", got, text)
	}
	back, ok := guidBytes(text)
	if !ok || string(back) != string(raw) {
		t.Errorf("guidBytes(%s) = %x, want %x", text, back, raw)
	}
	c := &Connector{cfg: config{id: "objectGUID"}}
	if got, want := c.idFilter(text), `(objectGUID=\33\22\11\00\55\44\77\66\88\99\aa\bb\cc\dd\ee\ff)`; got != want {
		t.Errorf("idFilter = %s, want %s", got, want)
	}
	c.cfg.id = "entryUUID"
	if got := c.idFilter(`a*)(b\`); got != `(entryUUID=a\2a\29\28b\5c)` {
		t.Errorf("idFilter escapes as %s", got)
	}
}
