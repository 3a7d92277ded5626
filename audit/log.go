// Package audit owns the verifiable audit log built on top of a store's
// hash-chained entries (SPEC §4): the ed25519 key that signs checkpoints,
// signed checkpoints (RFC 6962 Merkle roots in the transparency-dev
// checkpoint format, as signed notes), verification of the whole log
// against its chain and every checkpoint, inclusion and consistency proofs
// any RFC 6962 verifier can check, and JSONL export.
//
// The store keeps the entries and checkpoints; this package only reads
// them through the small [Log] interface, which nhisync.Store satisfies.
// Every tree computation streams the log: memory stays O(log n) however
// many entries it holds.
package audit

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/nhisync/nhisync"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Log is what this package needs of a store: the audit entries with their
// exact leaf bytes, and the signed checkpoints.
type Log interface {
	// AuditHead returns the number of entries and the last entry's hash.
	AuditHead(ctx context.Context) (size int64, lastHash string, err error)
	// ScanAudit streams entries with from <= seq < to (to 0: to the end),
	// in seq order, with the exact leaf bytes stored for each.
	ScanAudit(ctx context.Context, from, to int64, fn func(e *nhisync.AuditEntry, leaf []byte) error) error
	// PutCheckpoint stores a signed tree head.
	PutCheckpoint(ctx context.Context, c *nhisync.Checkpoint) error
	// LatestCheckpoint returns the newest checkpoint, nil if none.
	LatestCheckpoint(ctx context.Context) (*nhisync.Checkpoint, error)
}

// CheckpointScanner is an optional capability of a [Log]: streaming every
// stored checkpoint, oldest first. [Verify] checks every checkpoint when
// the log has it, and only the latest one otherwise.
type CheckpointScanner interface {
	ScanCheckpoints(ctx context.Context, fn func(*nhisync.Checkpoint) error) error
}

var _ Log = nhisync.Store(nil)

// hasher is the RFC 6962 SHA-256 tree hasher: leaf = H(0x00‖entry),
// node = H(0x01‖left‖right), the same domain separation as
// nhisync.LeafHash.
var hasher = rfc6962.New(crypto.SHA256)

// ranges makes compact ranges over RFC 6962 node hashes.
var ranges = &compact.RangeFactory{Hash: hasher.HashChildren}

// rootOf returns the root hash of a compact range that starts at leaf 0,
// the RFC 6962 empty-tree hash for an empty range.
func rootOf(r *compact.Range) ([]byte, error) {
	if r.End() == 0 {
		return hasher.EmptyRoot(), nil
	}
	return r.GetRootHash(nil)
}

// b64 encodes a hash in the standard base64 alphabet, as everywhere in
// the audit log.
func b64(h []byte) string { return base64.StdEncoding.EncodeToString(h) }

// hashIs reports whether the base64 text want encodes the hash h, without
// allocating.
func hashIs(h []byte, want string) bool {
	var buf [64]byte
	n := base64.StdEncoding.EncodedLen(len(h))
	if n > len(buf) || n != len(want) {
		return false
	}
	base64.StdEncoding.Encode(buf[:n], h)
	return string(buf[:n]) == want
}

// ctxEvery is how many entries a stream handles between checks of its
// context.
const ctxEvery = 4096

// leafFn receives one entry of a tree walk: its position (1-based seq),
// the stored entry, its leaf bytes and its RFC 6962 leaf hash.
type leafFn func(seq int64, e *nhisync.AuditEntry, leaf, leafHash []byte) error

// walk streams entries with seq in [from, to) into rng, whose end must be
// from-1, checking what the tree depends on: entries are contiguous from
// from, each stored hash is the hash of its leaf bytes, and each stored
// prev_hash is the hash before it (prev for the first). fn, if not nil,
// sees every entry after it was appended. visit, if not nil, sees every
// perfect-subtree node the walk completes. It returns how many entries it
// appended and the hash of the last one. A damaged log is an ECONFLICT
// error that names the entry.
func walk(ctx context.Context, op string, log Log, rng *compact.Range, from, to int64, prev string, fn leafFn, visit compact.VisitFn) (int64, string, error) {
	next := from
	err := log.ScanAudit(ctx, from, to, func(e *nhisync.AuditEntry, leaf []byte) error {
		if (next-from)%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if e.Seq != next {
			return damaged(op, next, fmt.Sprintf("expected entry %d, found entry %d", next, e.Seq))
		}
		h := nhisync.LeafHash(leaf)
		if !hashIs(h, e.Hash) {
			return damaged(op, next, "its hash does not match its contents")
		}
		if e.PrevHash != prev {
			return damaged(op, next, fmt.Sprintf("its prev_hash does not chain to entry %d", next-1))
		}
		if err := rng.Append(h, visit); err != nil {
			return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
		}
		if fn != nil {
			if err := fn(next, e, leaf, h); err != nil {
				return err
			}
		}
		prev = e.Hash
		next++
		return nil
	})
	if err != nil {
		return next - from, prev, wrap(op, err)
	}
	return next - from, prev, nil
}

// damaged returns the error of an operation that found the log damaged.
func damaged(op string, seq int64, what string) *nhisync.Error {
	return &nhisync.Error{Code: nhisync.ECONFLICT, Op: op,
		Message: fmt.Sprintf("audit log is damaged at entry %d: %s; run nhisync audit verify", seq, what)}
}

// wrap makes err an *nhisync.Error of op. An error that already is one
// (a store failure, a damaged log) keeps its code and message.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *nhisync.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: "interrupted", Err: err}
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "reading the audit log failed", Err: err}
}
