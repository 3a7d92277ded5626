package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// memLog is an in-memory audit log for tests: a slice of sealed entries
// with their leaf bytes, kept in slice order so tests can tamper with it
// the way someone with write access to a store could.
type memLog struct {
	items []memItem
	cps   []*nhisync.Checkpoint
	// read counts entries handed to ScanAudit callbacks.
	read int64
}

type memItem struct {
	e    nhisync.AuditEntry
	leaf []byte
}

var (
	_ Log               = (*memLog)(nil)
	_ CheckpointScanner = (*memLog)(nil)
)

// latestOnly hides ScanCheckpoints: a log that offers only its latest
// checkpoint.
type latestOnly struct{ Log }

func (m *memLog) AuditHead(ctx context.Context) (int64, string, error) {
	if len(m.items) == 0 {
		return 0, "", nil
	}
	return int64(len(m.items)), m.items[len(m.items)-1].e.Hash, nil
}

func (m *memLog) ScanAudit(ctx context.Context, from, to int64, fn func(*nhisync.AuditEntry, []byte) error) error {
	start := 0
	// Fast path for an untampered prefix: entry from sits at from-1.
	if i := from - 1; i > 0 && i < int64(len(m.items)) && m.items[i].e.Seq == from {
		start = int(i)
	}
	for _, it := range m.items[start:] {
		if err := ctx.Err(); err != nil {
			return err
		}
		if it.e.Seq < from || (to > 0 && it.e.Seq >= to) {
			continue
		}
		e := it.e
		m.read++
		if err := fn(&e, it.leaf); err != nil {
			return err
		}
	}
	return nil
}

func (m *memLog) PutCheckpoint(ctx context.Context, c *nhisync.Checkpoint) error {
	for _, old := range m.cps {
		if old.Size == c.Size {
			return nhisync.Errorf(nhisync.ECONFLICT, "checkpoint at size %d exists", c.Size)
		}
	}
	m.cps = append(m.cps, c)
	return nil
}

func (m *memLog) LatestCheckpoint(ctx context.Context) (*nhisync.Checkpoint, error) {
	if len(m.cps) == 0 {
		return nil, nil
	}
	return m.cps[len(m.cps)-1], nil
}

func (m *memLog) ScanCheckpoints(ctx context.Context, fn func(*nhisync.Checkpoint) error) error {
	for _, c := range m.cps {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// add appends n generated entries, numbered and sealed after the last
// one.
func (m *memLog) add(n int) *memLog {
	for range n {
		seq, prev := int64(1), ""
		if len(m.items) > 0 {
			last := m.items[len(m.items)-1].e
			seq, prev = last.Seq+1, last.Hash
		}
		e := genEntry(seq)
		leaf := e.Seal(prev)
		m.items = append(m.items, memItem{e: e, leaf: leaf})
	}
	return m
}

// newMemLog returns a log of n generated entries.
func newMemLog(n int) *memLog { return (&memLog{}).add(n) }

// at returns the item stored for seq (by position, before tampering).
func (m *memLog) at(seq int64) *memItem { return &m.items[seq-1] }

// reseal recomputes leaf bytes and hashes from position i (0-based) to the
// end, as a careful forger would after an edit.
func (m *memLog) reseal(i int) {
	for ; i < len(m.items); i++ {
		prev := ""
		if i > 0 {
			prev = m.items[i-1].e.Hash
		}
		m.items[i].leaf = m.items[i].e.Seal(prev)
	}
}

// renumber sets stored seqs to positions (as a store keyed by seq would
// hold them after rows were moved), leaving leaves and hashes alone.
func (m *memLog) renumber() {
	for i := range m.items {
		m.items[i].e.Seq = int64(i) + 1
	}
}

// leaves returns the leaf bytes of every entry, in order.
func (m *memLog) leaves() [][]byte {
	out := make([][]byte, len(m.items))
	for i, it := range m.items {
		out[i] = it.leaf
	}
	return out
}

var (
	actors  = []string{"idp", "cmdb", "catalog", "person:alice"}
	actions = []string{nhisync.ActObserved, nhisync.ActAccepted, nhisync.ActWriteApplied, nhisync.ActRefused, nhisync.ActMerged}
	fields  = []string{"owner", "lifecycle", "entitlements", "classification"}
	epoch   = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
)

// genEntry returns a realistic unsealed entry for seq.
func genEntry(seq int64) nhisync.AuditEntry {
	i := int(seq)
	e := nhisync.AuditEntry{
		Seq:      seq,
		Time:     epoch.Add(time.Duration(seq) * time.Millisecond),
		Actor:    actors[i%len(actors)],
		Action:   actions[i%len(actions)],
		Kind:     "service_account",
		RecordID: seq/3 + 1,
		Record:   fmt.Sprintf("service_account/aws/bot-%d", seq/3),
		Field:    fields[i%len(fields)],
		System:   actors[(i+1)%3],
		Old:      nhisync.Str(fmt.Sprintf("team-%d@example.com", i%7)),
		New:      nhisync.Str(fmt.Sprintf("team-%d@example.com", i%11)),
		Reason:   "priority",
	}
	if e.Field == "entitlements" {
		e.Old = nhisync.SetOf("read", "write")
		e.New = nhisync.SetOf("read")
	}
	return e
}

// refRoot is RFC 6962's Merkle Tree Hash written from its definition
// (section 2.1), independent of transparency-dev/merkle.
func refRoot(leaves [][]byte) []byte {
	n := len(leaves)
	if n == 0 {
		s := sha256.Sum256(nil)
		return s[:]
	}
	if n == 1 {
		s := sha256.Sum256(append([]byte{0}, leaves[0]...))
		return s[:]
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	b := append([]byte{1}, refRoot(leaves[:k])...)
	b = append(b, refRoot(leaves[k:])...)
	s := sha256.Sum256(b)
	return s[:]
}

// testSigner returns a signer whose key lives in a test directory.
func testSigner(t testing.TB, origin string) *Signer {
	t.Helper()
	s, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "audit.key"), origin)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustCheckpoint signs a checkpoint of the log as it is now.
func mustCheckpoint(t testing.TB, log Log, s *Signer) *nhisync.Checkpoint {
	t.Helper()
	cp, err := Checkpoint(context.Background(), log, s)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// wantCode fails unless err is an *nhisync.Error with code.
func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	var e *nhisync.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *nhisync.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("error code %q, want %q (%v)", e.Code, code, err)
	}
}
