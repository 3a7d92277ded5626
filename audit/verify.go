package audit

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nhisync/nhisync"
	"golang.org/x/mod/sumdb/note"
)

// Report is the outcome of [Verify]: what `nhisync audit verify` prints.
type Report struct {
	// OK is true when nothing is wrong.
	OK bool `json:"ok"`
	// Entries is how many entries were checked and found good; Root the
	// RFC 6962 root over them (base64).
	Entries int64  `json:"entries"`
	Root    string `json:"root"`
	// Checkpoints is how many signed checkpoints were checked and found
	// good; Signed the size of the largest of them: entries after it are
	// not yet covered by any signature.
	Checkpoints int   `json:"checkpoints"`
	Signed      int64 `json:"signed"`
	// FirstBad is the seq of the first bad entry: the first one that fails
	// its own checks, or, when entries hash to a different root than a
	// checkpoint signed, the first entry that checkpoint covers and no
	// earlier good checkpoint does. It is 0 when no entry is to blame (a
	// forged or edited checkpoint). Problem names it and what is wrong.
	FirstBad int64  `json:"first_bad,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// Every store lists its checkpoints, so verify checks all of them.
var _ CheckpointScanner = nhisync.Store(nil)

// errStop ends a scan once a problem is found.
var errStop = errors.New("stop")

// Verify recomputes the whole log and checks it: seq contiguous from 1;
// for every entry, the stored hash is the hash of its leaf bytes, the leaf
// decodes to the stored fields, its seq is its position and its prev_hash
// is the previous entry's hash; the Merkle root at each checkpoint's size
// is the root it signed, its signature verifies with verifierKey
// (signed-note form, as [Signer.VerifierKey] prints it), its origin is
// the key's name, and the size and root stored beside it are the ones it
// signed; the checkpoint it names as the one it was signed after is
// stored, with the same root; no checkpoint is larger than the log; the
// log's head agrees with its last entry. Entries appended while Verify
// runs are left for the next run.
//
// Every stored checkpoint is checked when the log is a
// [CheckpointScanner] (every nhisync.Store is), else the latest. As each
// one's root is recomputed from the same entries, consecutive
// checkpoints are consistent (the larger tree extends the smaller) when
// both pass. Deleting the newest checkpoint cannot be seen from the store
// alone: compare Signed with a checkpoint kept elsewhere.
//
// Verification stops at the first problem, which the report names; a
// damaged log is a report with OK false, not an error. Errors: EINVALID
// for a malformed verifier key, EUNAVAIL when ctx ends, and the store's
// codes.
func Verify(ctx context.Context, log Log, verifierKey string) (*Report, error) {
	return VerifyAgainst(ctx, log, verifierKey, nil)
}

// VerifyAgainst is [Verify] that also checks kept, checkpoints an auditor
// kept outside the store (the audit.publish file, read with
// [ReadCheckpoints]), exactly as it checks stored ones: each must verify
// with verifierKey and the log must hold its size with entries hashing to
// its root. A log rolled back (its tail and the newer checkpoints
// deleted), or rewritten and re-signed with the stored key, still verifies
// on its own but fails against a checkpoint kept before the change.
//
// Beyond [Verify]'s checks, every entry must be covered by a good
// checkpoint (a store signs each commit's entries in the commit's own
// transaction, so an uncovered entry was appended outside nhisync, or the
// checkpoints covering it were deleted), no entry's time is before the
// previous entry's, and the columns a store indexes entries by (seq,
// record_id) agree with the hashed leaf.
func VerifyAgainst(ctx context.Context, log Log, verifierKey string, kept []*nhisync.Checkpoint) (*Report, error) {
	const op = "audit.Verify"
	v, err := newVerifier(verifierKey)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: err.Error()}
	}
	headSize, headHash, err := log.AuditHead(ctx)
	if err != nil {
		return nil, wrap(op, err)
	}
	cps, all, err := checkpoints(ctx, log)
	if err != nil {
		return nil, wrap(op, err)
	}
	headAfter, _, err := log.AuditHead(ctx)
	if err != nil {
		return nil, wrap(op, err)
	}
	// Checkpoints of commits that landed while these were read are left
	// for the next run, like their entries.
	cps = slices.DeleteFunc(cps, func(c *nhisync.Checkpoint) bool { return c.Size > headSize && c.Size <= headAfter })
	isKept := make(map[*nhisync.Checkpoint]bool, len(kept))
	for _, c := range kept {
		isKept[c] = true
	}
	cps = append(cps, kept...)
	slices.SortStableFunc(cps, func(a, b *nhisync.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	label := func(c *nhisync.Checkpoint) string {
		if isKept[c] {
			return fmt.Sprintf("kept checkpoint at size %d", c.Size)
		}
		return fmt.Sprintf("checkpoint at size %d", c.Size)
	}

	r := &Report{OK: true}
	rng := ranges.NewEmptyRange(0)
	fail := func(seq int64, format string, args ...any) {
		r.OK, r.FirstBad, r.Problem = false, seq, fmt.Sprintf(format, args...)
	}
	// good holds the root of every checkpoint found good so far, by size,
	// for the checkpoints signed after them to name.
	good := make(map[int64][]byte)
	// checkUpTo checks the checkpoints stored at sizes up to n, the
	// number of entries hashed so far; false when one is bad.
	next := 0
	checkUpTo := func(n int64) (bool, error) {
		for ; next < len(cps) && cps[next].Size <= n; next++ {
			cp := cps[next]
			body, problem := openStored(cp, v)
			if problem == "" && all {
				problem = linkProblem(body, good)
			}
			if problem != "" {
				fail(0, "%s: %s", label(cp), problem)
				return false, nil
			}
			root, err := rootOf(rng)
			if err != nil {
				return false, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
			}
			if !bytes.Equal(root, body.Hash) {
				from := r.Signed + 1
				if from > cp.Size {
					from = 1
				}
				fail(from, "%s: entries %d to %d do not hash to the root it signed (changed after signing, or rewritten and signed again?)", label(cp), from, cp.Size)
				return false, nil
			}
			r.Checkpoints++
			r.Signed = cp.Size
			good[cp.Size] = cp.Root
		}
		return true, nil
	}

	ok, err := checkUpTo(0)
	if err != nil || !ok {
		return r, err
	}
	prev := ""
	var prevTime time.Time
	// Entries appended after the head was read are left for next time.
	err = log.ScanAudit(ctx, 1, headSize+1, func(e *nhisync.AuditEntry, leaf []byte) error {
		seq := r.Entries + 1
		if seq%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		h, problem := checkEntry(seq, prev, e, leaf)
		if problem == "" && e.Time.Before(prevTime) {
			problem = fmt.Sprintf("its time %s is before entry %d's, %s: time ran backwards (inserted, or written by a process that had lost its lease?)",
				e.Time.UTC().Format(time.RFC3339Nano), seq-1, prevTime.UTC().Format(time.RFC3339Nano))
		}
		if problem != "" {
			fail(seq, "entry %d: %s", seq, problem)
			return errStop
		}
		prevTime = e.Time
		if err := rng.Append(h, nil); err != nil {
			return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
		}
		r.Entries = seq
		prev = e.Hash
		ok, err := checkUpTo(seq)
		if err == nil && !ok {
			err = errStop
		}
		return err
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, wrap(op, err)
	}
	if root, err := rootOf(rng); err == nil {
		r.Root = b64(root)
	}
	if !r.OK {
		return r, nil
	}
	// Checkpoints beyond the last entry: the tail is gone, unless the
	// checkpoint itself is forged.
	if next < len(cps) {
		cp := cps[next]
		body, problem := openStored(cp, v)
		switch {
		case problem != "":
			fail(0, "%s: %s", label(cp), problem)
		default:
			fail(r.Entries+1, "log has %d entries but a %s is signed (tail deleted, or log rolled back?)", r.Entries, label(cp))
			_ = body
		}
		return r, nil
	}
	switch {
	case headSize > r.Entries:
		fail(r.Entries+1, "log has %d entries but its head says %d (tail deleted?)", r.Entries, headSize)
	case headSize > 0 && headHash != prev:
		fail(headSize, "entry %d: hash differs from the one the log's head records (edited?)", headSize)
	case r.Entries > r.Signed:
		fail(r.Signed+1, "entries %d to %d are not covered by any signed checkpoint: nhisync signs every entry in the transaction that appends it, so these were appended outside nhisync, or the checkpoints covering them were deleted", r.Signed+1, r.Entries)
	}
	return r, nil
}

// openStored opens a stored checkpoint's signed note and checks that it
// signs the size and root stored beside it; problem says what is wrong.
func openStored(cp *nhisync.Checkpoint, v note.Verifier) (signedHead, string) {
	head, problem := openCheckpoint(cp.Note, v)
	switch {
	case problem != "":
		return head, problem
	case int64(head.Size) != cp.Size:
		return head, fmt.Sprintf("stored at size %d, but its signed note is for size %d (moved or reordered?)", cp.Size, head.Size)
	case !bytes.Equal(head.Hash, cp.Root):
		return head, "its stored root differs from the root its note signed (edited?)"
	}
	return head, ""
}

// linkProblem checks the checkpoint a signed head names as its
// predecessor against the checkpoints found good so far (root by size):
// it must be one of them, with the same root. Two checkpoints signed
// concurrently may name the same predecessor, so it need not be the
// latest. A head that names none (the first checkpoint, or one signed
// before checkpoints named their predecessor) has nothing to check.
func linkProblem(head signedHead, good map[int64][]byte) string {
	if head.PrevSize == 0 {
		return ""
	}
	root, ok := good[head.PrevSize]
	switch {
	case !ok:
		return fmt.Sprintf("it was signed after a checkpoint at size %d, which is not stored (deleted?)", head.PrevSize)
	case !bytes.Equal(root, head.PrevRoot):
		return fmt.Sprintf("it was signed after a checkpoint at size %d with another root than the one stored (log forked, or checkpoint replaced?)", head.PrevSize)
	}
	return ""
}

// checkEntry checks the entry at position seq, after the entry whose hash
// is prev, and returns its leaf hash, or what is wrong with it.
func checkEntry(seq int64, prev string, e *nhisync.AuditEntry, leaf []byte) (leafHash []byte, problem string) {
	if e.Seq != seq {
		return nil, fmt.Sprintf("expected here, found entry %d (deleted, inserted or reordered?)", e.Seq)
	}
	h := nhisync.LeafHash(leaf)
	if !hashIs(h, e.Hash) {
		return nil, "hash does not match its contents (edited?)"
	}
	// The stored entry encodes to its leaf exactly in the usual case,
	// which is much cheaper to learn than decoding the leaf. Otherwise
	// decode it and compare field by field.
	d := e
	if !bytes.Equal(e.LeafBytes(), leaf) {
		d = new(nhisync.AuditEntry)
		if err := json.Unmarshal(leaf, d); err != nil {
			return nil, "its hashed contents are not an audit entry (edited?)"
		}
	}
	if d.Seq != seq {
		return nil, fmt.Sprintf("its hashed contents say entry %d (inserted, deleted or reordered?)", d.Seq)
	}
	if d.PrevHash != prev {
		if seq == 1 {
			return nil, "prev_hash is not empty, so entries before it are missing (head deleted?)"
		}
		return nil, fmt.Sprintf("prev_hash does not chain to entry %d (inserted, deleted or reordered?)", seq-1)
	}
	if d != e {
		if f := differentField(d, e); f != "" {
			return nil, fmt.Sprintf("stored %s differs from its hashed contents (edited?)", f)
		}
	}
	return h, ""
}

// differentField returns the JSON name of the first field in which the
// stored entry e differs from the entry d decoded from its leaf ("" when
// none does).
func differentField(d, e *nhisync.AuditEntry) string {
	switch {
	case !d.Time.Equal(e.Time):
		return "time"
	case d.Actor != e.Actor:
		return "actor"
	case d.Action != e.Action:
		return "action"
	case d.Kind != e.Kind:
		return "kind"
	case d.RecordID != e.RecordID:
		return "record_id"
	case d.Record != e.Record:
		return "record"
	case d.Field != e.Field:
		return "field"
	case d.System != e.System:
		return "system"
	case !d.Old.Equal(e.Old):
		return "old"
	case !d.New.Equal(e.New):
		return "new"
	case d.Reason != e.Reason:
		return "reason"
	case !slices.Equal(d.Links, e.Links):
		return "links"
	case !slices.EqualFunc(d.Fields, e.Fields, func(a, b nhisync.AuditField) bool {
		return a.Field == b.Field && a.System == b.System && a.Actor == b.Actor && a.Value.Equal(b.Value) && a.Reason == b.Reason &&
			slices.Equal(a.Agreed, b.Agreed)
	}):
		return "fields"
	case d.PrevHash != e.PrevHash:
		return "prev_hash"
	}
	return ""
}

// checkpoints returns the checkpoints to verify, by size: every stored one
// when the log can list them (all true), else the latest.
func checkpoints(ctx context.Context, log Log) (cps []*nhisync.Checkpoint, all bool, err error) {
	if s, ok := log.(CheckpointScanner); ok {
		all = true
		err := s.ScanCheckpoints(ctx, func(c *nhisync.Checkpoint) error {
			cps = append(cps, c)
			return nil
		})
		if err != nil {
			return nil, false, err
		}
	} else {
		c, err := log.LatestCheckpoint(ctx)
		if err != nil {
			return nil, false, err
		}
		if c != nil {
			cps = append(cps, c)
		}
	}
	slices.SortStableFunc(cps, func(a, b *nhisync.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	return cps, all, nil
}
