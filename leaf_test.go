package nhisync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
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

func anyEntry() *rapid.Generator[*AuditEntry] { return entries(anyValue()) }

// storedValue draws values as the engine makes them (through Str and
// SetOf: trimmed), the only ones a decoded leaf gives back unchanged.
func storedValue() *rapid.Generator[Value] {
	return rapid.Custom(func(t *rapid.T) Value {
		if rapid.Bool().Draw(t, "set") {
			return SetOf(rapid.SliceOfN(anyString(), 0, 4).Draw(t, "elems")...)
		}
		return Str(anyString().Draw(t, "s"))
	})
}

func entries(values *rapid.Generator[Value]) *rapid.Generator[*AuditEntry] {
	return rapid.Custom(func(t *rapid.T) *AuditEntry {
		str := func(label string) string {
			if rapid.Bool().Draw(t, label+" empty") {
				return ""
			}
			return anyString().Draw(t, label)
		}
		// Drawn in UTC, where json takes years 0-9999 (another zone
		// could move year 0 or 9999 out of them).
		tm := time.Date(rapid.IntRange(0, 9999).Draw(t, "year"), time.Month(rapid.IntRange(1, 12).Draw(t, "month")), rapid.IntRange(1, 28).Draw(t, "day"),
			rapid.IntRange(0, 23).Draw(t, "hour"), rapid.IntRange(0, 59).Draw(t, "min"), rapid.IntRange(0, 59).Draw(t, "sec"),
			rapid.SampledFrom([]int{0, 1, 1000, 120000000, 999999999, 500}).Draw(t, "nsec"), time.UTC)
		e := &AuditEntry{Seq: rapid.Int64().Draw(t, "seq"), Time: tm, Actor: str("actor"), Action: str("action"), Kind: str("kind"),
			RecordID: rapid.SampledFrom([]int64{0, 1, -5, 1 << 53, -1 << 63}).Draw(t, "record id"), Record: str("record"), Field: str("field"),
			System: str("system"), Old: values.Draw(t, "old"), New: values.Draw(t, "new"), Reason: str("reason"), PrevHash: str("prev"), Hash: str("hash")}
		for range rapid.IntRange(0, 3).Draw(t, "links") {
			e.Links = append(e.Links, AuditLink{System: str("l.system"), ID: str("l.id"), Reason: str("l.reason")})
		}
		for range rapid.IntRange(0, 3).Draw(t, "fields") {
			f := AuditField{Field: str("f.field"), System: str("f.system"), Actor: str("f.actor"), Value: values.Draw(t, "f.value"), Reason: str("f.reason")}
			switch rapid.IntRange(0, 2).Draw(t, "agreed kind") {
			case 1:
				f.Agreed = []string{} // empty but not nil: omitted, as json omits it
			case 2:
				f.Agreed = rapid.SliceOfN(anyString(), 1, 3).Draw(t, "f.agreed")
			}
			e.Fields = append(e.Fields, f)
		}
		if rapid.Bool().Draw(t, "empty links") && e.Links == nil {
			e.Links = []AuditLink{}
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

// TestLeafRoundTrips: a leaf decodes to an entry whose leaf is the same
// bytes, links and agreeing systems included, so a verifier recomputing a
// leaf from a stored entry gets the hash that was signed.
func TestLeafRoundTrips(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := entries(storedValue()).Draw(t, "entry")
		leaf := e.LeafBytes()
		var back AuditEntry
		if err := json.Unmarshal(leaf, &back); err != nil {
			t.Fatalf("leaf %s does not decode: %v", leaf, err)
		}
		if got := back.LeafBytes(); !bytes.Equal(got, leaf) {
			t.Fatalf("leaf\n%s\nre-encodes as\n%s", leaf, got)
		}
	})
}

// sealedJSON is the leaf encoding/json writes for e sealed after prev at
// seq and t: the reference a sealed leaf must match, prepared or not.
func sealedJSON(e *AuditEntry, seq int64, t time.Time, prev string) []byte {
	c := *e
	c.Seq, c.Time, c.PrevHash, c.Hash = seq, t.UTC(), prev, ""
	if !c.validUTF8() {
		replaceInvalidUTF8(&c)
	}
	return leafJSON(&c)
}

// TestPreparedLeafMatchesJSON: a leaf sealed from the body PrepareAudit
// encoded ahead, with seq, time (perhaps raised, as a store does) and
// prev_hash spliced in, is byte for byte what encoding/json writes for
// the entry, as is the leaf sealed without preparing; both give the same
// hash.
func TestPreparedLeafMatchesJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := anyEntry().Draw(t, "entry")
		if rapid.Bool().Draw(t, "in a zone") {
			e.Time = e.Time.In(time.FixedZone("x", rapid.IntRange(-14*3600, 14*3600).Draw(t, "offset")))
		}
		plain := *e
		b := &Batch{Audit: []*AuditEntry{e}}
		b.PrepareAudit()
		seq := rapid.Int64().Draw(t, "store seq")
		at := e.Time
		if rapid.Bool().Draw(t, "time raised") {
			at = at.Add(time.Duration(rapid.Int64Range(1, 1e14).Draw(t, "raise")))
		}
		prev := anyString().Draw(t, "store prev")
		want := sealedJSON(e, seq, at, prev)
		e.Seq, e.Time = seq, at
		leaf, h := b.SealAudit(0, prev)
		if !bytes.Equal(leaf, want) {
			t.Fatalf("prepared leaf\n got %s\nwant %s", leaf, want)
		}
		plain.Seq, plain.Time = seq, at
		leaf2, h2 := plain.SealLeaf(prev)
		if !bytes.Equal(leaf2, want) || !bytes.Equal(h, h2) || e.Hash != plain.Hash || !bytes.Equal(h, LeafHash(want)) {
			t.Fatalf("leaf sealed unprepared\n%s (%x)\nprepared\n%s (%x)", leaf2, h2, leaf, h)
		}
		if e.PrevHash != prev {
			t.Fatalf("PrevHash = %q, want %q", e.PrevHash, prev)
		}
	})
}

// TestPreparedLeafSeesChanges: an entry that grows after PrepareAudit (a
// field, a link or an agreeing system appended, a string changed), or an
// entry put in the place of the one prepared, is encoded afresh; one
// appended after PrepareAudit is encoded whole.
func TestPreparedLeafSeesChanges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := anyEntry().Draw(t, "entry")
		b := &Batch{Audit: []*AuditEntry{e}}
		b.PrepareAudit()
		switch rapid.IntRange(0, 5).Draw(t, "change") {
		case 0:
			e.Fields = append(e.Fields, AuditField{Field: "f", System: "s", Value: Str("v")})
		case 1:
			e.Links = append(e.Links, AuditLink{System: "s", ID: "1"})
		case 2:
			if len(e.Fields) == 0 {
				e.Fields = append(e.Fields, AuditField{Field: "f"})
			}
			e.Fields[0].Agreed = append(e.Fields[0].Agreed, "cmdb")
		case 3:
			e.Reason += "!"
		case 4:
			c := *e
			c.Action += "another action"
			b.Audit[0] = &c
			e = &c
		case 5:
			c := *e
			c.Action += "appended"
			b.Audit = append(b.Audit, &c)
			b.SealAudit(0, "p")
			e = &c
			if got, want := e.Seal(""), sealedJSON(e, e.Seq, e.Time, ""); !bytes.Equal(got, want) {
				t.Fatalf("entry appended after PrepareAudit\n got %s\nwant %s", got, want)
			}
			got, _ := b.SealAudit(1, "p")
			if want := sealedJSON(e, e.Seq, e.Time, "p"); !bytes.Equal(got, want) {
				t.Fatalf("entry appended after PrepareAudit\n got %s\nwant %s", got, want)
			}
			return
		}
		got, _ := b.SealAudit(0, "p")
		if want := sealedJSON(e, e.Seq, e.Time, "p"); !bytes.Equal(got, want) {
			t.Fatalf("entry changed after PrepareAudit\n got %s\nwant %s", got, want)
		}
	})
}

// TestPrepareAuditFromKeepsLeaves: an entry read back from its leaf,
// appended again at the same seq, time and prev_hash from that leaf
// (PrepareAuditFrom, as a store copy does), seals to the same leaf, also
// one written before absent values were left out ("old":null).
func TestPrepareAuditFromKeepsLeaves(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := entries(storedValue()).Draw(t, "entry")
		e.PrevHash = rapid.StringMatching(`[A-Za-z0-9+/]{0,43}=?`).Draw(t, "prev") // a hash, or none
		leaf := e.LeafBytes()
		if e.Old.IsZero() && rapid.Bool().Draw(t, "legacy") {
			i := bytes.Index(leaf, []byte(`,"new":`))
			if i < 0 {
				i = bytes.Index(leaf, []byte(`,"prev_hash":`))
				for _, m := range []string{`,"fields":`, `,"links":`, `,"reason":`} {
					if j := bytes.Index(leaf, []byte(m)); j >= 0 && j < i {
						i = j
					}
				}
			}
			leaf = append(leaf[:i:i], append([]byte(`,"old":null`), leaf[i:]...)...)
		}
		var back AuditEntry
		if err := json.Unmarshal(leaf, &back); err != nil {
			t.Fatalf("leaf %s does not decode: %v", leaf, err)
		}
		seq, prev := back.Seq, back.PrevHash
		back.Seq, back.PrevHash, back.Hash = 0, "", ""
		b := &Batch{Audit: []*AuditEntry{&back}}
		b.PrepareAuditFrom([][]byte{leaf})
		back.Seq = seq
		got, _ := b.SealAudit(0, prev)
		if !bytes.Equal(got, leaf) {
			t.Fatalf("read back and sealed again\n got %s\nwant %s", got, leaf)
		}
	})
}

// A prepared entry whose time json refuses falls back to encoding/json,
// like an unprepared one.
func TestPreparedLeafDeclinesWhatJSONRefuses(t *testing.T) {
	e := &AuditEntry{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Action: ActAccepted}
	b := &Batch{Audit: []*AuditEntry{e}}
	b.PrepareAudit()
	e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	defer func() {
		if recover() == nil {
			t.Fatal("sealing a year json refuses did not panic as encoding/json does")
		}
	}()
	b.SealAudit(0, "")
}

// A time json refuses (year outside 0-9999) falls back to encoding/json.
func TestLeafEncoderDeclinesWhatJSONRefuses(t *testing.T) {
	e := &AuditEntry{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, ok := appendLeaf(nil, e); ok {
		t.Fatal("appendLeaf encoded a year json.Marshal refuses")
	}
}

// createdEntry is a new record's record.created entry as a first pass
// over three systems writes it: two links and eight first values, most
// held by more than one system and uncontested (their reason left out).
func createdEntry() *AuditEntry {
	const empty = "" // ReasonFirstValue, left out
	return &AuditEntry{Seq: 123456, Time: time.Date(2026, 11, 30, 1, 2, 3, 456789000, time.UTC), Actor: "idp", Action: ActRecordCreated,
		Kind: "service_account", RecordID: 98765, Record: "aws/svc-0397e6a4d1aa21b7", System: "idp", New: Str("00052439-0c36-4961-645a-a8585268b3e8"), Reason: "create_from",
		Links: []AuditLink{{System: "cmdb", ID: "417114b2-9063-c5d2-6cbc-c6dc5385d827", Reason: "match"}, {System: "catalog", ID: "aws/svc-0397e6a4d1aa21b7", Reason: "match"}},
		Fields: []AuditField{
			{Field: "name", System: "catalog", Value: Str("svc-0397e6a4d1aa21b7"), Reason: empty, Agreed: []string{"cmdb", "idp"}},
			{Field: "platform", System: "catalog", Value: Str("aws"), Reason: empty, Agreed: []string{"cmdb", "idp"}},
			{Field: "owner", System: "cmdb", Value: Str("team217@example.com"), Reason: empty, Agreed: []string{"catalog"}},
			{Field: "classification", System: "catalog", Value: SetOf("internal", "public"), Reason: "merge: the golden value was empty", Agreed: []string{"cmdb"}},
			{Field: "lifecycle", System: "cmdb", Value: Str("active"), Reason: empty, Agreed: []string{"idp"}},
			{Field: "environment", System: "cmdb", Value: Str("production"), Reason: empty},
			{Field: "credential", System: "idp", Value: SensitiveValue([]byte("0123456789abcdef0123456789abcdef"), Str("AKIA0000")), Reason: empty},
			{Field: "rotated_at", System: "idp", Actor: "idp:rotator", Value: Str("2026-11-01T00:00:00Z"), Reason: empty},
		},
		PrevHash: "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
}

// BenchmarkSealLeaf seals a first pass's record.created entry as a store
// does: encoding it whole, or splicing into the body PrepareAudit encoded
// ahead (whose cost is "prepare").
func BenchmarkSealLeaf(b *testing.B) {
	const prev = "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	b.Run("whole", func(b *testing.B) {
		e := createdEntry()
		b.ReportAllocs()
		for b.Loop() {
			e.SealLeaf(prev)
		}
	})
	b.Run("prepared", func(b *testing.B) {
		batch := &Batch{Audit: []*AuditEntry{createdEntry()}}
		batch.PrepareAudit()
		b.ReportAllocs()
		for b.Loop() {
			batch.SealAudit(0, prev)
		}
	})
	b.Run("prepare", func(b *testing.B) {
		batch := &Batch{Audit: []*AuditEntry{createdEntry()}}
		b.ReportAllocs()
		for b.Loop() {
			batch.PrepareAudit()
		}
	})
}

// BenchmarkLeafBytes encodes a first pass's record.created leaf, by the
// hand-written encoder and by encoding/json.
func BenchmarkLeafBytes(b *testing.B) {
	e := createdEntry()
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

// TestCreatedReasonsExpand: the reasons a record.created entry keeps of
// its links and first values (CreatedLinkReason, CreatedFieldReason),
// short or left out, expand to the reasons given, whatever they are
// (but "" and "merge", which no rule gives a first value).
func TestCreatedReasonsExpand(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		reason := rapid.OneOf(rapid.SampledFrom([]string{ReasonFirstValue, ReasonMergeFirstValue, ReasonMatch, "reappeared", "priority: a ranks above b"}),
			rapid.String()).Filter(func(s string) bool { return s != "" && s != mergeFirstValue }).Draw(t, "reason")
		e := &AuditEntry{Action: ActRecordCreated, Links: []AuditLink{{System: "a", ID: "1", Reason: CreatedLinkReason(reason)}},
			Fields: []AuditField{{Field: "f", System: "a", Value: Str("v"), Reason: CreatedFieldReason(reason)}}}
		var back AuditEntry
		if err := json.Unmarshal(e.LeafBytes(), &back); err != nil {
			t.Fatal(err)
		}
		x := back.Expand()
		if len(x) != 3 || x[1].Action != ActRecordLinked || x[1].Reason != reason || x[2].Action != ActAccepted || x[2].Reason != reason {
			t.Fatalf("reason %q expands to link %q, field %q", reason, x[1].Reason, x[2].Reason)
		}
	})
}

// TestPreparedBatchSealsEveryLeaf: a batch's entries prepared together
// and sealed one after the other, as a store does, each give the leaf
// encoding/json writes, and sealing one leaves the leaves sealed before
// intact (they share buffers).
func TestPreparedBatchSealsEveryLeaf(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		es := rapid.SliceOfN(anyEntry(), 1, 12).Draw(t, "entries")
		b := &Batch{Audit: es}
		b.PrepareAudit()
		var leaves, want [][]byte
		prev := ""
		for i, e := range es {
			e.Seq = int64(i + 1)
			w := sealedJSON(e, e.Seq, e.Time, prev)
			leaf, _ := b.SealAudit(i, prev)
			leaves, want = append(leaves, leaf), append(want, w)
			prev = e.Hash
		}
		for i := range leaves {
			if !bytes.Equal(leaves[i], want[i]) {
				t.Fatalf("entry %d sealed\n got %s\nwant %s", i+1, leaves[i], want[i])
			}
		}
	})
}

// TestAuditRoomLeavesMatchJSON: batches prepared in turn in two rooms
// (AuditRoom, as a pass does: a room again only once the batch before
// the one in flight is sealed) seal to the leaves encoding/json writes,
// and preparing and sealing the next batch in the other room leaves the
// sealed leaves of the one before as they were.
func TestAuditRoomLeavesMatchJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var rooms [2]AuditRoom
		var prev [][]byte // the sealed leaves of the batch before
		var prevWant [][]byte
		seq := int64(0)
		for turn := range rapid.IntRange(1, 5).Draw(t, "batches") {
			n := rapid.IntRange(0, 40).Draw(t, "entries")
			b := &Batch{}
			for range n {
				b.Audit = append(b.Audit, anyEntry().Draw(t, "entry"))
			}
			b.PrepareAuditIn(&rooms[turn%2])
			var leaves, wants [][]byte
			for i, e := range b.Audit {
				seq++
				want := sealedJSON(e, seq, e.Time, "p")
				e.Seq = seq
				leaf, _ := b.SealAudit(i, "p")
				if !bytes.Equal(leaf, want) {
					t.Fatalf("batch %d, entry %d\n got %s\nwant %s", turn, i, leaf, want)
				}
				leaves, wants = append(leaves, leaf), append(wants, want)
			}
			for i := range prev {
				if !bytes.Equal(prev[i], prevWant[i]) {
					t.Fatalf("batch %d: entry %d of the batch before changed\n got %s\nwant %s", turn, i, prev[i], prevWant[i])
				}
			}
			prev, prevWant = leaves, wants
		}
	})
}

// TestAuditRoomReusesMemory: a batch prepared and sealed in a room that a
// batch as large used before allocates a small part of what its bodies
// and leaves take (only each leaf's hash and hash text, and the time's
// text), not the buffers themselves again.
func TestAuditRoomReusesMemory(t *testing.T) {
	batch := func() *Batch { return &Batch{Audit: createdEntries(300)} }
	var room AuditRoom
	leafBytes := 0
	seal := func(b *Batch) {
		b.PrepareAuditIn(&room)
		leafBytes = 0
		for i := range b.Audit {
			leaf, _ := b.SealAudit(i, "p")
			leafBytes += len(leaf)
		}
	}
	seal(batch())
	b := batch()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	seal(b)
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	// Bodies and leaves are about 2 × leafBytes; a leaf's hash (32) and
	// its text (48) about 80 bytes each.
	if limit := uint64(leafBytes / 4); got > limit {
		t.Fatalf("preparing and sealing %d leaves (%d bytes) in a used room allocated %d bytes, want at most %d", len(b.Audit), leafBytes, got, limit)
	}
}

// createdEntries returns n record.created entries of eight fields each,
// as a first pass's batch holds them.
func createdEntries(n int) []*AuditEntry {
	at := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	entries := make([]*AuditEntry, n)
	for i := range entries {
		e := &AuditEntry{Time: at, Actor: "idp", Action: ActRecordCreated, Kind: "service_account", RecordID: int64(i + 1),
			Record: fmt.Sprintf("aws/svc-%08d", i), System: "idp", New: Str(fmt.Sprintf("id-%08d", i)), Reason: "create_from"}
		for _, f := range []string{"name", "owner", "platform", "environment", "tier", "lifecycle", "cost_center", "last_rotated"} {
			e.Fields = append(e.Fields, AuditField{Field: f, System: "catalog", Value: Str(f + "-value-" + fmt.Sprint(i)), Agreed: []string{"cmdb", "idp"}})
		}
		entries[i] = e
	}
	return entries
}

// BenchmarkPrepareSealAudit prepares and seals a batch of 300
// record.created entries, as a pass's batch is (PrepareAudit, then
// SealAudit per entry on the store's side): afresh, and in a room a batch
// as large used before (AuditRoom, as a pass does).
func BenchmarkPrepareSealAudit(b *testing.B) {
	entries := createdEntries(300)
	seal := func(batch *Batch) {
		for i := range batch.Audit {
			batch.SealAudit(i, "JUMHypuHOpY/CJy18BNzoUSYM4bthxj5hUU3Q0Id2Kg=")
		}
	}
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			batch := &Batch{Audit: entries}
			batch.PrepareAudit()
			seal(batch)
		}
	})
	b.Run("room", func(b *testing.B) {
		var room AuditRoom
		for b.Loop() {
			batch := &Batch{Audit: entries}
			batch.PrepareAuditIn(&room)
			seal(batch)
		}
	})
}
