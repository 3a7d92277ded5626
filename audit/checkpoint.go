package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nhisync/nhisync"
	tlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint signs a checkpoint of the whole log with signer, stores it
// with PutCheckpoint and returns it.
//
// nhisync itself does not sign this way: its stores sign each commit's
// entries inside the commit ([Notary], nhisync.Store.SetNotary), so they
// never sign entries they did not append. Checkpoint signs whatever the
// log holds; it is for tools that build a log outside a store, and for
// tests. It hashes every entry (O(n) time,
// O(log n) memory); a long-running process should keep one
// [Checkpointer] instead, which hashes only the entries added since its
// previous checkpoint. See [Checkpointer.Checkpoint] for the rules and
// error codes.
func Checkpoint(ctx context.Context, log Log, signer *Signer) (*nhisync.Checkpoint, error) {
	return (&Checkpointer{Signer: signer}).Checkpoint(ctx, log)
}

// Checkpointer signs checkpoints of one log. Between calls it keeps the
// compact range of the last tree it hashed (a few dozen hashes), so each
// checkpoint hashes only the entries appended since the previous one. It
// is safe for concurrent use.
type Checkpointer struct {
	// Signer signs the checkpoints; required.
	Signer *Signer
	// Clock stamps the checkpoints' At (default nhisync.SystemClock).
	Clock nhisync.Clock

	mu    sync.Mutex
	state *tree
}

// tree is the state a Checkpointer keeps between calls: the compact range
// of the first size entries, the hash of entry size, and the checkpoint
// it last verified or signed.
type tree struct {
	size     int64
	lastHash string
	hashes   [][]byte
	checked  *nhisync.Checkpoint
}

// Checkpoint signs a checkpoint of every entry in the log (origin, size
// and RFC 6962 root in the transparency-dev checkpoint format, as a
// signed note), stores it with PutCheckpoint and returns it.
//
// It never signs a tree that contradicts the latest stored checkpoint: a
// log that holds fewer entries than that checkpoint, or whose entries no
// longer hash to its root, or whose entries do not chain (seq contiguous,
// each hash the hash of its leaf, each prev_hash the previous hash) is
// refused with ECONFLICT, and `nhisync audit verify` tells what is wrong.
// An empty log without checkpoints returns nil: there is nothing to
// sign. When the latest checkpoint already covers the whole log it is
// returned and nothing new is stored (ECONFLICT if another key signed it). Errors:
// EINVALID without a Signer, ECONFLICT for a damaged log, EUNAVAIL when
// ctx ends, and the store's codes.
func (c *Checkpointer) Checkpoint(ctx context.Context, log Log) (*nhisync.Checkpoint, error) {
	const op = "audit.Checkpoint"
	if c.Signer == nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "no signing key"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()

	size, lastHash, err := log.AuditHead(ctx)
	if err != nil {
		return nil, wrap(op, err)
	}
	latest, err := log.LatestCheckpoint(ctx)
	if err != nil {
		return nil, wrap(op, err)
	}
	if size == 0 && latest == nil {
		// An empty log has nothing to sign yet.
		return nil, nil
	}
	if latest != nil && latest.Size > size {
		return nil, &nhisync.Error{Code: nhisync.ECONFLICT, Op: op,
			Message: fmt.Sprintf("log has %d entries but checkpoint signed at size %d (tail deleted?); run nhisync audit verify", size, latest.Size)}
	}

	rng, prev, verified, err := c.resume(ctx, log, size, latest)
	if err != nil {
		return nil, wrap(op, err)
	}
	// An unverified latest checkpoint is checked where the walk passes
	// its size.
	checkAt := int64(-1)
	if latest != nil && !verified {
		checkAt = latest.Size
	}
	matches := func() error {
		root, err := rootOf(rng)
		if err != nil {
			return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
		}
		if !bytes.Equal(root, latest.Root) {
			return &nhisync.Error{Code: nhisync.ECONFLICT, Op: op,
				Message: fmt.Sprintf("the log no longer matches the checkpoint signed at size %d (entries changed after it was signed?); run nhisync audit verify", latest.Size)}
		}
		return nil
	}
	if checkAt == int64(rng.End()) {
		if err := matches(); err != nil {
			return nil, err
		}
	}
	_, prev, err = walk(ctx, op, log, rng, int64(rng.End())+1, size+1, prev, func(seq int64, _ *nhisync.AuditEntry, _, _ []byte) error {
		if seq == checkAt {
			return matches()
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	if int64(rng.End()) != size || prev != lastHash {
		return nil, &nhisync.Error{Code: nhisync.ECONFLICT, Op: op,
			Message: fmt.Sprintf("the log's head says %d entries ending in %s, but its entries do not; run nhisync audit verify", size, short(lastHash))}
	}
	root, err := rootOf(rng)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
	}
	keep := func(cp *nhisync.Checkpoint) {
		c.state = &tree{size: size, lastHash: lastHash, hashes: slices.Clone(rng.Hashes()), checked: cp}
	}

	if latest != nil && latest.Size == size {
		// Already signed: a store keeps one checkpoint per size.
		if !c.signedByUs(latest) {
			return nil, &nhisync.Error{Code: nhisync.ECONFLICT, Op: op,
				Message: fmt.Sprintf("the checkpoint at size %d is not signed by key %s (key changed?); run nhisync audit verify", size, c.Signer.Origin())}
		}
		keep(latest)
		return latest, nil
	}
	body := tlog.Checkpoint{Origin: c.Signer.Origin(), Size: uint64(size), Hash: root}.Marshal()
	if latest != nil {
		// Name the checkpoint this one follows, so deleting a stored
		// checkpoint leaves a signed reference to it that verify finds.
		body = append(body, prevLine(latest)...)
	}
	signed, err := c.Signer.sign(body)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "signing the checkpoint failed", Err: err}
	}
	clock := c.Clock
	if clock == nil {
		clock = nhisync.SystemClock{}
	}
	cp := &nhisync.Checkpoint{Size: size, Root: root, Note: signed, At: clock.Now()}
	if err := log.PutCheckpoint(ctx, cp); err != nil {
		return nil, wrap(op, err)
	}
	keep(cp)
	return cp, nil
}

// resume returns the compact range to continue from and the hash of its
// last entry: the kept state when the log still holds it, else an empty
// range. verified reports that latest is the checkpoint the kept state
// was checked against or signed, so it needs no new check.
func (c *Checkpointer) resume(ctx context.Context, log Log, size int64, latest *nhisync.Checkpoint) (rng *compact.Range, prev string, verified bool, err error) {
	s := c.state
	c.state = nil
	fresh := ranges.NewEmptyRange(0)
	if s == nil || s.size > size {
		return fresh, "", false, nil
	}
	if latest != nil {
		verified = s.checked != nil && s.checked.Size == latest.Size && bytes.Equal(s.checked.Root, latest.Root)
		if !verified && latest.Size < s.size {
			// Stored by someone else inside the kept range, where it
			// cannot be checked: start over.
			return fresh, "", false, nil
		}
	}
	if s.size > 0 {
		same := false
		err := log.ScanAudit(ctx, s.size, s.size+1, func(e *nhisync.AuditEntry, leaf []byte) error {
			same = e.Seq == s.size && e.Hash == s.lastHash && hashIs(nhisync.LeafHash(leaf), e.Hash)
			return nil
		})
		if err != nil {
			return nil, "", false, err
		}
		if !same {
			return fresh, "", false, nil
		}
	}
	rng, err = ranges.NewRange(0, uint64(s.size), slices.Clone(s.hashes))
	if err != nil {
		return fresh, "", false, nil
	}
	return rng, s.lastHash, verified, nil
}

// signedByUs reports whether cp's note carries a valid signature of c's
// key over the same origin.
func (c *Checkpointer) signedByUs(cp *nhisync.Checkpoint) bool {
	v, err := note.NewVerifier(c.Signer.VerifierKey())
	if err != nil {
		return false
	}
	head, problem := openCheckpoint(cp.Note, v)
	return problem == "" && int64(head.Size) == cp.Size && bytes.Equal(head.Hash, cp.Root)
}

// ParseCheckpoint checks a signed checkpoint note against a verifier key
// (signed-note form, as [Signer.VerifierKey] prints it) and returns its
// size and root. The origin must be the key's name. Errors are EINVALID:
// a bad key, a signature that does not verify, or a note that is not a
// checkpoint.
func ParseCheckpoint(signedNote []byte, verifierKey string) (*nhisync.Checkpoint, error) {
	const op = "audit.ParseCheckpoint"
	v, err := newVerifier(verifierKey)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: err.Error()}
	}
	head, problem := openCheckpoint(signedNote, v)
	if problem != "" {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "checkpoint: " + problem}
	}
	return &nhisync.Checkpoint{Size: int64(head.Size), Root: head.Hash, Note: signedNote}, nil
}

// newVerifier parses a verifier key in signed-note form.
func newVerifier(verifierKey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return nil, errors.New("the verifier key is not in signed-note form (name+hash+base64key), as nhisync audit key prints it")
	}
	return v, nil
}

// signedHead is the signed body of a checkpoint note: the
// transparency-dev checkpoint, and the checkpoint it was signed after
// (PrevSize 0 when it names none: the first one, or one signed before
// checkpoints named their predecessor).
type signedHead struct {
	tlog.Checkpoint
	PrevSize int64
	PrevRoot []byte
}

// prevKeyword starts the extension line by which a checkpoint names the
// one it follows: "prev SIZE ROOT", ROOT in base64. Checkpoint parsers
// pass extension lines through (transparency-dev formats returns them as
// the rest of the body), so RFC 6962 verifiers read these notes as they
// read any checkpoint.
const prevKeyword = "prev"

// prevLine returns the extension line naming c as the previous checkpoint.
func prevLine(c *nhisync.Checkpoint) []byte {
	return fmt.Appendf(nil, "%s %d %s\n", prevKeyword, c.Size, b64(c.Root))
}

// openCheckpoint verifies a checkpoint note's signature with v and parses
// its body. problem says what is wrong ("" when nothing is), to follow
// "checkpoint …: ".
func openCheckpoint(signedNote []byte, v note.Verifier) (signedHead, string) {
	n, err := note.Open(signedNote, note.VerifierList(v))
	var invalid *note.InvalidSignatureError
	var unverified *note.UnverifiedNoteError
	switch {
	case errors.As(err, &invalid):
		return signedHead{}, "signature does not verify with the verifier key (forged?)"
	case errors.As(err, &unverified):
		return signedHead{}, fmt.Sprintf("not signed by key %s+%08x (forged, or signed by another key?)", v.Name(), v.KeyHash())
	case err != nil:
		return signedHead{}, "not a valid signed note (edited?)"
	}
	var head signedHead
	rest, err := head.Unmarshal([]byte(n.Text))
	if err != nil {
		return signedHead{}, "signed, but not a checkpoint"
	}
	if head.Origin != v.Name() {
		return signedHead{}, fmt.Sprintf("signed for log %q, not %q", head.Origin, v.Name())
	}
	for line := range strings.Lines(string(rest)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != prevKeyword {
			continue // another extension: not ours to judge
		}
		malformed := fmt.Sprintf("signed, but its %q line is malformed", prevKeyword)
		if len(f) != 3 {
			return signedHead{}, malformed
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 1 || size >= int64(head.Size) {
			return signedHead{}, malformed
		}
		root, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil {
			return signedHead{}, malformed
		}
		head.PrevSize, head.PrevRoot = size, root
	}
	return head, ""
}

// short abbreviates a hash for messages.
func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	if h == "" {
		return `""`
	}
	return h
}
