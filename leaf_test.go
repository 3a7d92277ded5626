package nhisync

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode"

	"pgregory.net/rapid"
)

// anyString draws strings rich in what JSON escapes: control characters,
// quotes, backslashes, <, >, &, U+2028/9, multi-byte runes and bytes that
// are not UTF-8.
func anyString() *rapid.Generator[string] {
	special := rapid.SampledFrom([]string{"\"", "\\", "<", ">", "&", "\u2028", "\u2029", "\x00", "\x1f", "\x7f", "\b", "\f", "\n", "\r", "\t", "é", "😀", "\xff", "\xc3", "hmac-sha256:ab", " "})
	return rapid.Custom(func(t *rapid.T) string {
		var b bytes.Buffer
		for _, p := range rapid.SliceOfN(rapid.OneOf(special, rapid.String(), rapid.StringOf(rapid.RuneFrom(nil, unicode.Cc, unicode.Zl, unicode.Zp))), 0, 6).Draw(t, "parts") {
			b.WriteString(p)
		}
		if rapid.Bool().Draw(t, "raw bytes") {
			b.Write(rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "bytes"))
		}
		return b.String()
	})
}

func anyValue() *rapid.Generator[Value] {
	return rapid.Custom(func(t *rapid.T) Value {
		switch rapid.IntRange(0, 3).Draw(t, "value kind") {
		case 0:
			return Value{}
		case 1:
			return Str(anyString().Draw(t, "s"))
		case 2:
			return Value{s: anyString().Draw(t, "raw s")}
		default:
			return SetOf(rapid.SliceOfN(anyString(), 0, 4).Draw(t, "elems")...)
		}
	})
}

func anyEntry() *rapid.Generator[*AuditEntry] {
	return rapid.Custom(func(t *rapid.T) *AuditEntry {
		str := func(label string) string {
			if rapid.Bool().Draw(t, label+" empty") {
				return ""
			}
			return anyString().Draw(t, label)
		}
		loc := time.FixedZone("x", rapid.IntRange(-14*3600, 14*3600).Draw(t, "offset"))
		tm := time.Date(rapid.IntRange(0, 9999).Draw(t, "year"), time.Month(rapid.IntRange(1, 12).Draw(t, "month")), rapid.IntRange(1, 28).Draw(t, "day"),
			rapid.IntRange(0, 23).Draw(t, "hour"), rapid.IntRange(0, 59).Draw(t, "min"), rapid.IntRange(0, 59).Draw(t, "sec"),
			rapid.SampledFrom([]int{0, 1, 1000, 120000000, 999999999, 500}).Draw(t, "nsec"), loc).UTC()
		e := &AuditEntry{Seq: rapid.Int64().Draw(t, "seq"), Time: tm, Actor: str("actor"), Action: str("action"), Kind: str("kind"),
			RecordID: rapid.SampledFrom([]int64{0, 1, -5, 1 << 53, -1 << 63}).Draw(t, "record id"), Record: str("record"), Field: str("field"),
			System: str("system"), Old: anyValue().Draw(t, "old"), New: anyValue().Draw(t, "new"), Reason: str("reason"), PrevHash: str("prev"), Hash: str("hash")}
		for range rapid.IntRange(0, 3).Draw(t, "fields") {
			e.Fields = append(e.Fields, AuditField{Field: str("f.field"), System: str("f.system"), Actor: str("f.actor"), Value: anyValue().Draw(t, "f.value"), Reason: str("f.reason")})
		}
		return e
	})
}

// TestLeafEncoderMatchesJSON: the hand-written leaf encoder writes exactly
// the bytes encoding/json writes, for any entry, so every leaf hash, old
// and new, is unchanged (LeafBytes encodes its copy of the entry with it).
func TestLeafEncoderMatchesJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := anyEntry().Draw(t, "entry")
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendLeaf(nil, e)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("appendLeaf (ok %v)\n got %s\nwant %s", ok, got, want)
		}
	})
}

// A time json refuses (year outside 0-9999) falls back to encoding/json.
func TestLeafEncoderDeclinesWhatJSONRefuses(t *testing.T) {
	e := &AuditEntry{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, ok := appendLeaf(nil, e); ok {
		t.Fatal("appendLeaf encoded a year json.Marshal refuses")
	}
}

func BenchmarkLeafBytes(b *testing.B) {
	e := &AuditEntry{Seq: 123456, Time: time.Date(2026, 11, 30, 1, 2, 3, 456789000, time.UTC), Actor: "cmdb", Action: ActRecordCreated,
		Kind: "service_account", RecordID: 98765, Record: "service_account/aws/svc-0012345", System: "cmdb", New: Str("c12345"), Reason: "create_from",
		Fields: []AuditField{{Field: "name", System: "idp", Value: Str("svc-0012345")}, {Field: "owner", System: "cmdb", Value: Str("team7@example.com"), Reason: "authority"},
			{Field: "classification", System: "cmdb", Value: SetOf("pii", "pci")}},
		PrevHash: "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
	b.Run("encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.LeafBytes()
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := *e
			leafJSON(&c)
		}
	})
}
