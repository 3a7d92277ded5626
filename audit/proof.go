package audit

import (
	"bytes"
	"context"
	"fmt"

	"github.com/nhisync/nhisync"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// Proof is an inclusion proof of one entry in a signed checkpoint: what
// `nhisync audit proof SEQ -o json` prints (SPEC §4). Hashes are SHA-256
// with RFC 6962 domain separation; byte slices marshal as standard base64.
type Proof struct {
	// Seq is the entry's seq; LeafIndex is Seq-1, its index in the tree.
	Seq       int64 `json:"seq"`
	LeafIndex int64 `json:"leaf_index"`
	TreeSize  int64 `json:"tree_size"`
	// Entry holds the exact bytes hashed for the leaf.
	Entry    []byte `json:"entry"`
	LeafHash []byte `json:"leaf_hash"`
	RootHash []byte `json:"root_hash"`
	// Hashes go from the leaf to the root.
	Hashes [][]byte `json:"proof"`
	// Checkpoint is the signed note of the checkpoint RootHash is from.
	Checkpoint string `json:"checkpoint"`
}

// Consistency proves that the tree of OldSize entries is a prefix of the
// tree of NewSize entries: what `nhisync audit consistency OLD NEW -o
// json` prints.
type Consistency struct {
	OldSize int64    `json:"old_size"`
	NewSize int64    `json:"new_size"`
	OldRoot []byte   `json:"old_root"`
	NewRoot []byte   `json:"new_root"`
	Hashes  [][]byte `json:"proof"`
}

// InclusionProof proves that entry seq is in the tree cp signed (the
// latest stored checkpoint when cp is nil). It streams the first cp.Size
// entries: O(n) time, O(log n) memory. Errors: ENOTFOUND when there is no
// checkpoint yet; EINVALID when seq is not in 1..cp.Size; ECONFLICT when
// the log no longer matches the checkpoint; EUNAVAIL when ctx ends; and
// the store's codes.
func InclusionProof(ctx context.Context, log Log, seq int64, cp *nhisync.Checkpoint) (*Proof, error) {
	const op = "audit.InclusionProof"
	if cp == nil {
		var err error
		if cp, err = log.LatestCheckpoint(ctx); err != nil {
			return nil, wrap(op, err)
		}
		if cp == nil {
			return nil, &nhisync.Error{Code: nhisync.ENOTFOUND, Op: op, Message: "no signed checkpoint yet: run nhisync sync first"}
		}
	}
	if seq < 1 || seq > cp.Size {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op,
			Message: fmt.Sprintf("entry %d is not in the checkpoint, which covers entries 1 to %d", seq, cp.Size)}
	}
	index, size := uint64(seq-1), uint64(cp.Size)
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
	}
	p := &Proof{Seq: seq, LeafIndex: seq - 1, TreeSize: cp.Size, Checkpoint: string(cp.Note)}
	t, err := buildTree(ctx, op, log, cp.Size, nodes.IDs, 0, func(s int64, _ *nhisync.AuditEntry, leaf, h []byte) error {
		if s == seq {
			p.Entry, p.LeafHash = bytes.Clone(leaf), h
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(t.root, cp.Root) {
		return nil, &nhisync.Error{Code: nhisync.ECONFLICT, Op: op,
			Message: fmt.Sprintf("the log no longer matches the checkpoint signed at size %d; run nhisync audit verify", cp.Size)}
	}
	if p.Hashes, err = rehash(nodes, t.hashes); err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
	}
	p.RootHash = t.root
	return p, nil
}

// ConsistencyProof proves that the log's first oldSize entries are a
// prefix of its first newSize entries, with both roots. It streams the
// first newSize entries. Errors: EINVALID unless 0 <= oldSize <= newSize
// <= the log's size; ECONFLICT when the log is damaged; EUNAVAIL when ctx
// ends; and the store's codes.
func ConsistencyProof(ctx context.Context, log Log, oldSize, newSize int64) (*Consistency, error) {
	const op = "audit.ConsistencyProof"
	size, _, err := log.AuditHead(ctx)
	if err != nil {
		return nil, wrap(op, err)
	}
	if oldSize < 0 || oldSize > newSize || newSize > size {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op,
			Message: fmt.Sprintf("sizes %d and %d: need 0 <= OLD <= NEW <= %d, the log's size", oldSize, newSize, size)}
	}
	nodes, err := proof.Consistency(uint64(oldSize), uint64(newSize))
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
	}
	t, err := buildTree(ctx, op, log, newSize, nodes.IDs, oldSize, nil)
	if err != nil {
		return nil, err
	}
	c := &Consistency{OldSize: oldSize, NewSize: newSize, OldRoot: t.rootAt, NewRoot: t.root}
	if c.Hashes, err = rehash(nodes, t.hashes); err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
	}
	return c, nil
}

// Verify checks p as any RFC 6962 verifier would: the leaf hash is the
// hash of Entry, the proof leads from it to RootHash, and Checkpoint is a
// note signed by verifierKey for TreeSize and RootHash. Errors are
// EINVALID and say what does not hold.
func (p *Proof) Verify(verifierKey string) error {
	const op = "audit.Proof.Verify"
	bad := func(format string, args ...any) error {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf(format, args...)}
	}
	if p.TreeSize < 1 || p.LeafIndex < 0 || p.LeafIndex >= p.TreeSize {
		return bad("leaf index %d is not in a tree of size %d", p.LeafIndex, p.TreeSize)
	}
	if !bytes.Equal(hasher.HashLeaf(p.Entry), p.LeafHash) {
		return bad("leaf_hash is not the hash of entry")
	}
	if err := proof.VerifyInclusion(hasher, uint64(p.LeafIndex), uint64(p.TreeSize), p.LeafHash, p.Hashes, p.RootHash); err != nil {
		return bad("the proof does not lead to root_hash: %v", err)
	}
	cp, err := ParseCheckpoint([]byte(p.Checkpoint), verifierKey)
	if err != nil {
		return err
	}
	if cp.Size != p.TreeSize || !bytes.Equal(cp.Root, p.RootHash) {
		return bad("the checkpoint signs size %d and another root, not tree_size %d and root_hash", cp.Size, p.TreeSize)
	}
	return nil
}

// Verify checks c as any RFC 6962 verifier would. Errors are EINVALID.
func (c *Consistency) Verify() error {
	if err := proof.VerifyConsistency(hasher, uint64(c.OldSize), uint64(c.NewSize), c.Hashes, c.OldRoot, c.NewRoot); err != nil {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: "audit.Consistency.Verify", Message: fmt.Sprintf("the consistency proof does not hold: %v", err)}
	}
	return nil
}

// rehash turns the hashes of a proof's nodes into the proof, never nil
// (an empty proof marshals as []).
func rehash(nodes proof.Nodes, hashes [][]byte) ([][]byte, error) {
	h, err := nodes.Rehash(hashes, hasher.HashChildren)
	if h == nil {
		h = [][]byte{}
	}
	return h, err
}

// builtTree is what buildTree learned: the root over all entries, the
// root over the first `at` entries, and the hashes of the wanted nodes in
// the order asked.
type builtTree struct {
	root   []byte
	rootAt []byte
	hashes [][]byte
}

// buildTree streams the first size entries into a compact range, keeping
// the hashes of the perfect-subtree nodes ids (which a proof is built
// from) and the root after the first at entries. fn, if not nil, sees
// every entry.
func buildTree(ctx context.Context, op string, log Log, size int64, ids []compact.NodeID, at int64, fn leafFn) (*builtTree, error) {
	want := make(map[compact.NodeID]int, len(ids))
	for i, id := range ids {
		want[id] = i
	}
	t := &builtTree{hashes: make([][]byte, len(ids))}
	if at == 0 {
		t.rootAt = hasher.EmptyRoot()
	}
	rng := ranges.NewEmptyRange(0)
	visit := func(id compact.NodeID, h []byte) {
		if i, ok := want[id]; ok {
			t.hashes[i] = h
		}
	}
	n, _, err := walk(ctx, op, log, rng, 1, size+1, "", func(seq int64, e *nhisync.AuditEntry, leaf, h []byte) error {
		if seq == at {
			root, err := rootOf(rng)
			if err != nil {
				return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
			}
			t.rootAt = root
		}
		if fn != nil {
			return fn(seq, e, leaf, h)
		}
		return nil
	}, visit)
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, &nhisync.Error{Code: nhisync.ECONFLICT, Op: op,
			Message: fmt.Sprintf("log has %d entries, fewer than %d (tail deleted?); run nhisync audit verify", n, size)}
	}
	if t.root, err = rootOf(rng); err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
	}
	for i, h := range t.hashes {
		if h == nil {
			return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: fmt.Errorf("proof node %v was never built", ids[i])}
		}
	}
	return t, nil
}
