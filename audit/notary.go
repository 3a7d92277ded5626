package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nhisync/nhisync"
	tlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Notary signs the checkpoints a store writes inside the commits that
// append audit entries ([nhisync.Notary]), and copies each one, once
// committed, to a file outside the store when one is configured
// (audit.publish).
type Notary struct {
	signer   *Signer
	verifier note.Verifier
	clock    nhisync.Clock
	publish  string
}

var _ nhisync.Notary = (*Notary)(nil)

// NewNotary returns a notary signing with s. publish, when not "", is the
// file every new checkpoint is appended to (created 0644 with missing
// parent directories 0700: checkpoints are public); clock stamps the
// checkpoints (nil: the system clock). Errors are EINVALID.
func NewNotary(s *Signer, publish string, clock nhisync.Clock) (*Notary, error) {
	if s == nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: "audit.NewNotary", Message: "no signing key"}
	}
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: "audit.NewNotary", Message: "the signing key has no usable verifier key", Err: err}
	}
	if clock == nil {
		clock = nhisync.SystemClock{}
	}
	return &Notary{signer: s, verifier: v, clock: clock, publish: publish}, nil
}

// Extend implements [nhisync.Notary]: it checks prev (signed by this
// notary's key, for the size and root stored with it, its tree state
// hashing to its root), appends leaves to its tree and signs the result,
// naming prev as the checkpoint it follows. A damaged prev is ECONFLICT.
func (n *Notary) Extend(prev *nhisync.Checkpoint, leaves [][]byte) (*nhisync.Checkpoint, error) {
	const op = "audit.Notary.Extend"
	damaged := func(format string, args ...any) error {
		return &nhisync.Error{Code: nhisync.ECONFLICT, Op: op, Message: fmt.Sprintf("the latest checkpoint (size %d) ", prev.Size) +
			fmt.Sprintf(format, args...) + "; nhisync will not extend it: run nhisync audit verify, and restore the store from a backup"}
	}
	rng := ranges.NewEmptyRange(0)
	if prev != nil {
		if _, problem := openStored(prev, n.verifier); problem != "" {
			return nil, damaged("%s", problem)
		}
		if prev.State != nil {
			hashes, ok := decodeState(prev.State)
			var err error
			if ok {
				rng, err = ranges.NewRange(0, uint64(prev.Size), hashes)
			}
			if !ok || err != nil {
				return nil, damaged("has a damaged tree state")
			}
		} else {
			if int64(len(leaves)) < prev.Size {
				return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the store gave fewer leaves than the checkpoint without tree state covers"}
			}
			for _, l := range leaves[:prev.Size] {
				if err := rng.Append(l, nil); err != nil {
					return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
				}
			}
			leaves = leaves[prev.Size:]
		}
		root, err := rootOf(rng)
		if err != nil {
			return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
		}
		if !bytes.Equal(root, prev.Root) {
			return nil, damaged("does not match the entries it covers (changed after signing?)")
		}
	}
	for _, l := range leaves {
		if err := rng.Append(l, nil); err != nil {
			return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
		}
	}
	root, err := rootOf(rng)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Err: err}
	}
	size := int64(rng.End())
	body := tlog.Checkpoint{Origin: n.signer.Origin(), Size: uint64(size), Hash: root}.Marshal()
	if prev != nil {
		body = append(body, prevLine(prev)...)
	}
	signed, err := n.signer.sign(body)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "signing the checkpoint failed", Err: err}
	}
	return &nhisync.Checkpoint{Size: size, Root: root, Note: signed, At: n.clock.Now().UTC(), State: encodeState(rng)}, nil
}

// Publish implements [nhisync.Notary]: it appends the checkpoints' signed
// notes, in order, each followed by a blank line, to the audit.publish
// file in one write, and flushes it to disk once (a first pass's bulk
// window publishes its ~2,000 checkpoints at 1M NHIs together: one open
// and one fsync each took EndBulk seconds, see BenchmarkPublish). Without
// a publish file, or without checkpoints, it does nothing. Errors are
// EUNAVAIL.
func (n *Notary) Publish(cs ...*nhisync.Checkpoint) error {
	if n.publish == "" || len(cs) == 0 {
		return nil
	}
	fail := func(err error) error {
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: "audit.Notary.Publish", Message: fmt.Sprintf("cannot append to %s", n.publish), Err: err}
	}
	size := 0
	for _, c := range cs {
		size += len(c.Note) + 1
	}
	notes := make([]byte, 0, size)
	for _, c := range cs {
		notes = append(append(notes, c.Note...), '\n')
	}
	if err := os.MkdirAll(filepath.Dir(n.publish), 0o700); err != nil {
		return fail(err)
	}
	f, err := os.OpenFile(n.publish, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	if err := writeSync(f, notes); err != nil {
		return fail(err)
	}
	return nil
}

// Seed starts the audit.publish file, when it does not exist yet, with
// the latest checkpoint stored in log (audit.publish newly set on a store
// that already holds a log), so the file keeps a checkpoint from the
// first run on, not only from the next commit. The checkpoint must verify
// with this notary's key. Without a publish file, or when it exists, or
// the log has no checkpoint, it does nothing. Errors: ECONFLICT when the
// latest checkpoint does not verify, EUNAVAIL when the file cannot be
// written, and the store's codes.
func (n *Notary) Seed(ctx context.Context, log Log) error {
	if n.publish == "" {
		return nil
	}
	if _, err := os.Stat(n.publish); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	cp, err := log.LatestCheckpoint(ctx)
	if err != nil || cp == nil {
		return wrap("audit.Notary.Seed", err)
	}
	if _, problem := openStored(cp, n.verifier); problem != "" {
		return &nhisync.Error{Code: nhisync.ECONFLICT, Op: "audit.Notary.Seed", Message: fmt.Sprintf(
			"the latest checkpoint (size %d) %s; it is not published: run nhisync audit verify", cp.Size, problem)}
	}
	return n.Publish(cp)
}

// encodeState returns the compact range's hashes, concatenated.
func encodeState(r *compact.Range) []byte {
	var b []byte
	for _, h := range r.Hashes() {
		b = append(b, h...)
	}
	if b == nil {
		b = []byte{}
	}
	return b
}

// decodeState splits a state into its SHA-256 hashes.
func decodeState(b []byte) ([][]byte, bool) {
	const n = 32
	if len(b)%n != 0 {
		return nil, false
	}
	hashes := make([][]byte, 0, len(b)/n)
	for i := 0; i < len(b); i += n {
		hashes = append(hashes, b[i:i+n:i+n])
	}
	return hashes, true
}

// ReadCheckpoints reads every signed checkpoint in r (a file kept by an
// auditor: the audit.publish file, or checkpoints saved one after another
// from `audit proof` or the API), checks each against verifierKey and
// returns them. Notes are separated by blank lines. A note that does not
// verify is EINVALID, naming its position.
func ReadCheckpoints(r io.Reader, verifierKey string) ([]*nhisync.Checkpoint, error) {
	const op = "audit.ReadCheckpoints"
	v, err := newVerifier(verifierKey)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: err.Error()}
	}
	var out []*nhisync.Checkpoint
	var body, sigs strings.Builder
	line := 0
	flush := func() error {
		if body.Len() == 0 && sigs.Len() == 0 {
			return nil
		}
		text := body.String() + "\n" + sigs.String()
		body.Reset()
		sigs.Reset()
		head, problem := openCheckpoint([]byte(text), v)
		if problem != "" {
			return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("checkpoint %d (ending at line %d): %s", len(out)+1, line, problem)}
		}
		out = append(out, &nhisync.Checkpoint{Size: int64(head.Size), Root: head.Hash, Note: []byte(text)})
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	inSigs := false
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case inSigs && strings.HasPrefix(l, "— "):
			sigs.WriteString(l + "\n")
		case inSigs:
			if err := flush(); err != nil {
				return nil, err
			}
			inSigs = false
			if l != "" {
				body.WriteString(l + "\n")
			}
		case l == "" && body.Len() > 0:
			inSigs = true
		case l != "":
			body.WriteString(l + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "cannot read the checkpoints", Err: err}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "no signed checkpoint found (expected notes as audit.publish writes them)"}
	}
	return out, nil
}
