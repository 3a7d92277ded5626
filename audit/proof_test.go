package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"pgregory.net/rapid"
)

func TestInclusionProofVerifiesWithTransparencyDev(t *testing.T) {
	ctx := context.Background()
	s := testSigner(t, "")
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			log := newMemLog(n)
			cp := mustCheckpoint(t, log, s)
			for seq := int64(1); seq <= int64(n); seq++ {
				p, err := InclusionProof(ctx, log, seq, nil)
				if err != nil {
					t.Fatal(err)
				}
				if p.LeafIndex != seq-1 || p.TreeSize != int64(n) || !bytes.Equal(p.Entry, log.at(seq).leaf) ||
					!bytes.Equal(p.RootHash, cp.Root) || p.Checkpoint != string(cp.Note) {
					t.Fatalf("seq %d: proof %+v does not describe the entry and checkpoint", seq, p)
				}
				leafHash := rfc6962.DefaultHasher.HashLeaf(p.Entry)
				if !bytes.Equal(p.LeafHash, leafHash) {
					t.Fatalf("seq %d: leaf_hash %x, want %x", seq, p.LeafHash, leafHash)
				}
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.LeafIndex), uint64(p.TreeSize), leafHash, p.Hashes, cp.Root); err != nil {
					t.Fatalf("seq %d of %d: transparency-dev rejects the proof: %v", seq, n, err)
				}
				if err := p.Verify(s.VerifierKey()); err != nil {
					t.Fatalf("seq %d: %v", seq, err)
				}
			}
		})
	}
}

func TestInclusionProofJSON(t *testing.T) {
	s := testSigner(t, "")
	for _, n := range []int{1, 13} {
		log := newMemLog(n)
		cp := mustCheckpoint(t, log, s)
		p, err := InclusionProof(context.Background(), log, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(maps.Keys(got))
		want := []string{"checkpoint", "entry", "leaf_hash", "leaf_index", "proof", "root_hash", "seq", "tree_size"}
		if !slices.Equal(keys, want) {
			t.Fatalf("keys %v, want %v", keys, want)
		}
		// Hashes are standard base64 strings; proof an array, even empty.
		for _, k := range []string{"entry", "leaf_hash", "root_hash"} {
			if _, err := base64.StdEncoding.DecodeString(got[k].(string)); err != nil {
				t.Errorf("%s is not standard base64: %v", k, err)
			}
		}
		if got["root_hash"] != base64.StdEncoding.EncodeToString(cp.Root) {
			t.Errorf("root_hash %v, want the checkpoint's", got["root_hash"])
		}
		hashes, ok := got["proof"].([]any)
		if !ok || len(hashes) != len(p.Hashes) {
			t.Fatalf("proof is %T %v, want an array of %d", got["proof"], got["proof"], len(p.Hashes))
		}
		if got["checkpoint"] != string(cp.Note) || got["leaf_index"] != 0.0 || got["tree_size"] != float64(n) {
			t.Errorf("checkpoint/leaf_index/tree_size = %v/%v/%v", got["checkpoint"], got["leaf_index"], got["tree_size"])
		}
		var back Proof
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if err := back.Verify(s.VerifierKey()); err != nil {
			t.Errorf("round-tripped proof: %v", err)
		}
	}
}

func TestInclusionProofAgainstAnOlderCheckpoint(t *testing.T) {
	s := testSigner(t, "")
	log := newMemLog(10)
	old := mustCheckpoint(t, log, s)
	log.add(20)
	mustCheckpoint(t, log, s)
	p, err := InclusionProof(context.Background(), log, 7, old)
	if err != nil {
		t.Fatal(err)
	}
	if p.TreeSize != 10 || !bytes.Equal(p.RootHash, old.Root) {
		t.Fatalf("proof for size %d, want 10", p.TreeSize)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 6, 10, p.LeafHash, p.Hashes, old.Root); err != nil {
		t.Fatal(err)
	}
}

func TestInclusionProofErrors(t *testing.T) {
	ctx := context.Background()
	s := testSigner(t, "")
	log := newMemLog(10)
	_, err := InclusionProof(ctx, log, 1, nil)
	wantCode(t, err, nhisync.ENOTFOUND)

	mustCheckpoint(t, log, s)
	log.add(2)
	for _, seq := range []int64{0, -1, 11, 12} {
		_, err := InclusionProof(ctx, log, seq, nil)
		wantCode(t, err, nhisync.EINVALID)
	}

	log.at(4).e.Reason = "rewritten"
	log.reseal(3)
	_, err = InclusionProof(ctx, log, 2, nil)
	wantCode(t, err, nhisync.ECONFLICT)
}

func TestProofVerifyRejects(t *testing.T) {
	s := testSigner(t, "")
	log := newMemLog(12)
	mustCheckpoint(t, log, s)
	good, err := InclusionProof(context.Background(), log, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(p *Proof)
		key    string
		want   string
	}{
		{"entry edited", func(p *Proof) { p.Entry = bytes.Replace(p.Entry, []byte("priority"), []byte("override"), 1) }, "", "leaf_hash is not the hash of entry"},
		{"entry and leaf hash replaced", func(p *Proof) {
			p.Entry = log.at(6).leaf
			p.LeafHash = nhisync.LeafHash(p.Entry)
		}, "", "does not lead to root_hash"},
		{"proof hash edited", func(p *Proof) { p.Hashes[1] = make([]byte, 32) }, "", "does not lead to root_hash"},
		{"proof shortened", func(p *Proof) { p.Hashes = p.Hashes[1:] }, "", "does not lead to root_hash"},
		{"index out of the tree", func(p *Proof) { p.LeafIndex = 12 }, "", "not in a tree of size 12"},
		{"another key", func(p *Proof) {}, testSigner(t, "").VerifierKey(), "not signed by key"},
		{"checkpoint of another size", func(p *Proof) {
			other := newMemLog(13)
			p.Checkpoint = string(mustCheckpoint(t, other, s).Note)
		}, "", "the checkpoint signs size 13"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := *good
			p.Hashes = slices.Clone(good.Hashes)
			p.Entry = bytes.Clone(good.Entry)
			tt.change(&p)
			key := tt.key
			if key == "" {
				key = s.VerifierKey()
			}
			err := p.Verify(key)
			wantCode(t, err, nhisync.EINVALID)
			if !strings.Contains(nhisync.ErrorMessage(err), tt.want) {
				t.Errorf("message %q, want it to contain %q", nhisync.ErrorMessage(err), tt.want)
			}
		})
	}
}

func TestConsistencyProofVerifiesWithTransparencyDev(t *testing.T) {
	ctx := context.Background()
	const n = 21
	log := newMemLog(n)
	leaves := log.leaves()
	for newSize := int64(0); newSize <= n; newSize++ {
		for oldSize := int64(0); oldSize <= newSize; oldSize++ {
			c, err := ConsistencyProof(ctx, log, oldSize, newSize)
			if err != nil {
				t.Fatal(err)
			}
			oldRoot, newRoot := refRoot(leaves[:oldSize]), refRoot(leaves[:newSize])
			if !bytes.Equal(c.OldRoot, oldRoot) || !bytes.Equal(c.NewRoot, newRoot) {
				t.Fatalf("%d→%d: roots %x %x, want %x %x", oldSize, newSize, c.OldRoot, c.NewRoot, oldRoot, newRoot)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(oldSize), uint64(newSize), c.Hashes, oldRoot, newRoot); err != nil {
				t.Fatalf("%d→%d: transparency-dev rejects the proof: %v", oldSize, newSize, err)
			}
			if err := c.Verify(); err != nil {
				t.Fatal(err)
			}
			if c.Hashes == nil {
				t.Fatalf("%d→%d: nil proof marshals as null", oldSize, newSize)
			}
		}
	}
}

func TestConsistencyProofJSONAndErrors(t *testing.T) {
	ctx := context.Background()
	log := newMemLog(9)
	c, err := ConsistencyProof(ctx, log, 3, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"old_size":3`, `"new_size":9`, `"old_root":"`, `"new_root":"`, `"proof":["`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
	c.Hashes[0][0] ^= 1
	wantCode(t, c.Verify(), nhisync.EINVALID)

	for _, sizes := range [][2]int64{{-1, 3}, {4, 3}, {3, 10}} {
		_, err := ConsistencyProof(ctx, log, sizes[0], sizes[1])
		wantCode(t, err, nhisync.EINVALID)
	}
}

// TestProofsProperty checks random proofs over random logs with
// transparency-dev's verifier.
func TestProofsProperty(t *testing.T) {
	s := testSigner(t, "")
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		n := rapid.IntRange(1, 300).Draw(rt, "n")
		log := newMemLog(n)
		cp, err := Checkpoint(ctx, log, s)
		if err != nil {
			rt.Fatal(err)
		}
		seq := rapid.Int64Range(1, int64(n)).Draw(rt, "seq")
		p, err := InclusionProof(ctx, log, seq, cp)
		if err != nil {
			rt.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(seq-1), uint64(n), rfc6962.DefaultHasher.HashLeaf(log.at(seq).leaf), p.Hashes, cp.Root); err != nil {
			rt.Fatalf("inclusion of %d in %d: %v", seq, n, err)
		}
		newSize := rapid.Int64Range(0, int64(n)).Draw(rt, "new")
		oldSize := rapid.Int64Range(0, newSize).Draw(rt, "old")
		c, err := ConsistencyProof(ctx, log, oldSize, newSize)
		if err != nil {
			rt.Fatal(err)
		}
		leaves := log.leaves()
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(oldSize), uint64(newSize), c.Hashes, refRoot(leaves[:oldSize]), refRoot(leaves[:newSize])); err != nil {
			rt.Fatalf("consistency %d→%d: %v", oldSize, newSize, err)
		}
	})
}

func TestLeafHashIsRFC6962(t *testing.T) {
	for _, leaf := range [][]byte{nil, []byte("{}"), newMemLog(1).at(1).leaf} {
		if got, want := nhisync.LeafHash(leaf), rfc6962.DefaultHasher.HashLeaf(leaf); !bytes.Equal(got, want) {
			t.Errorf("LeafHash(%q) = %x, RFC 6962 says %x", leaf, got, want)
		}
	}
}
