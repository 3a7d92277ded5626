package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nhisync/nhisync"
)

// TestPublishTogether: checkpoints published in one call append the same
// bytes as published one by one, which ReadCheckpoints reads back in
// order and VerifyAgainst accepts; no checkpoint appends nothing.
func TestPublishTogether(t *testing.T) {
	s := testSigner(t, "")
	log := newMemLog(5)
	n, err := NewNotary(s, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cps []*nhisync.Checkpoint
	var prev *nhisync.Checkpoint
	for _, leaf := range log.leaves() {
		cp, err := n.Extend(prev, [][]byte{nhisync.LeafHash(leaf)})
		if err != nil {
			t.Fatal(err)
		}
		cps, prev = append(cps, cp), cp
	}
	dir := t.TempDir()
	each, together := filepath.Join(dir, "each", "cps.txt"), filepath.Join(dir, "together", "cps.txt")
	ne, err := NewNotary(s, each, nil)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := NewNotary(s, together, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		if err := ne.Publish(cp); err != nil {
			t.Fatal(err)
		}
	}
	if err := nt.Publish(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(together); !os.IsNotExist(err) {
		t.Errorf("Publish of no checkpoint touched the file: %v", err)
	}
	if err := nt.Publish(cps...); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(each)
	b, _ := os.ReadFile(together)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("published together:\n%s\none by one:\n%s", b, a)
	}
	kept, err := ReadCheckpoints(bytes.NewReader(b), s.VerifierKey())
	if err != nil || len(kept) != 5 || kept[4].Size != 5 {
		t.Fatalf("ReadCheckpoints: %d, %v; want 5, the last of size 5", len(kept), err)
	}
	if rep, err := VerifyAgainst(context.Background(), log, s.VerifierKey(), kept); err != nil || !rep.OK {
		t.Fatalf("VerifyAgainst the published checkpoints: %+v %v", rep, err)
	}
}
