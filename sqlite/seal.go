package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nhisync/nhisync"
)

// sealer seals the batch's entries after the last stored one and, with a
// notary, signs the checkpoint that covers them, on a helper goroutine
// that runs while the commit's goroutine runs the batch's other
// statements; write then appends the sealed entries and stores the
// checkpoint, all inside the commit's transaction. The commit's goroutine
// is the first pass's critical path (the engine decides the next batch
// meanwhile), and sealing (hashing each leaf, chained by prev_hash) was a
// tenth of it. The store runs one writer at a time and the transaction
// began IMMEDIATE, so the head read at its start cannot move before it
// commits, and none of the statements run before the audit's touches the
// audit or checkpoints tables. Leaves the writer encoded ahead
// (Batch.PrepareAudit) only get their seq, time and prev_hash spliced in.
//
// An entry's time is never before the previous entry's: a clock that went
// back (another host's, or a step back of this one) is raised to it, so
// time in the log never runs backwards.
//
// With a notary, the log's head must be exactly the entry the latest
// checkpoint covers: entries beyond it were not appended by a commit (which
// signs its own), and are refused rather than signed.
type sealer struct {
	b      *nhisync.Batch
	notary nhisync.Notary
	// err is a failure of reading the head, or a head the latest
	// checkpoint does not cover: write returns it, where the audit's
	// statements would have failed, and no helper runs.
	err  error
	head int64 // the seq of the last stored entry

	// The helper's results: leaves[i] is entry i's leaf; the entry itself
	// gets its Seq, Time, PrevHash and Hash. cp is the signed checkpoint
	// (or cpErr why not), set before exited is closed.
	leaves [][]byte
	cp     *nhisync.Checkpoint
	cpErr  error

	// ready receives once per chunk of rowsPerInsert sealed entries;
	// stop asks the helper to give up, and exited is closed when it has
	// returned. seen is how many entries write knows are sealed.
	ready  chan struct{}
	exited chan struct{}
	stop   atomic.Bool
	seen   int
}

// startSeal reads the log's head (and, with a notary, the latest
// checkpoint) in tx and starts sealing b's entries after it. It returns
// nil when b has no entries. The caller must call done before the batch is
// handed back (the helper writes its entries).
func startSeal(ctx context.Context, tx *sql.Tx, b *nhisync.Batch, notary nhisync.Notary) *sealer {
	if len(b.Audit) == 0 {
		return nil
	}
	s := &sealer{b: b, notary: notary}
	q := newTxStmts(ctx, tx)
	seq, prev, last, err := auditTail(ctx, q)
	if err != nil {
		s.err = err
		return s
	}
	s.head = seq
	var latest *nhisync.Checkpoint
	var hashes [][]byte
	if notary != nil {
		if latest, err = latestCheckpoint(ctx, q); err != nil {
			s.err = err
			return s
		}
		if err := nhisync.CoveredHead(latest, seq, prev); err != nil {
			s.err = err
			return s
		}
		if latest != nil && latest.State == nil {
			// Signed before checkpoints kept their tree: hash it again once.
			if hashes, err = leafHashes(ctx, tx, seq); err != nil {
				s.err = err
				return s
			}
		}
	}
	s.leaves = make([][]byte, len(b.Audit))
	s.ready = make(chan struct{}, (len(b.Audit)+rowsPerInsert-1)/rowsPerInsert)
	s.exited = make(chan struct{})
	go s.seal(seq, prev, last, latest, hashes)
	return s
}

// seal is the helper: it seals the entries in order, then has the notary
// extend latest's tree by their leaf hashes (after hashes, the stored
// leaves' of a checkpoint without tree state).
func (s *sealer) seal(seq int64, prev string, last time.Time, latest *nhisync.Checkpoint, hashes [][]byte) {
	defer close(s.exited)
	b := s.b
	for i, e := range b.Audit {
		if i%rowsPerInsert == 0 && s.stop.Load() {
			return
		}
		if e.Time.Before(last) {
			e.Time = last
		}
		last = e.Time
		seq++
		e.Seq = seq
		leaf, h := b.SealAudit(i, prev)
		prev = e.Hash
		s.leaves[i] = leaf
		if s.notary != nil {
			hashes = append(hashes, h)
		}
		if (i+1)%rowsPerInsert == 0 || i+1 == len(b.Audit) {
			s.ready <- struct{}{}
		}
	}
	if s.notary == nil {
		return
	}
	s.cp, s.cpErr = s.notary.Extend(latest, hashes)
	if s.cpErr == nil {
		s.cp.LastHash = prev
	}
}

// leaf returns entry i's leaf, waiting for it to be sealed.
func (s *sealer) leaf(i int) []byte {
	for i >= s.seen {
		<-s.ready
		s.seen = min(s.seen+rowsPerInsert, len(s.leaves))
	}
	return s.leaves[i]
}

// write appends the sealed entries, moves the head and, with a notary,
// stores the checkpoint that covers them, which it returns. A nil sealer
// (no entries) writes nothing.
func (s *sealer) write(ctx context.Context, tx *sql.Tx) (*nhisync.Checkpoint, error) {
	if s == nil {
		return nil, nil
	}
	if s.err != nil {
		return nil, s.err
	}
	// head is the largest seq: SQLite hands the entries theirs.
	head := s.head
	err := insert{
		head: `INSERT INTO audit (record_id, leaf, hash) VALUES `,
		cols: 3,
		next: head + 1,
	}.run(ctx, tx, len(s.b.Audit), func(args []any, i int) []any {
		s.leaf(i)
		e := s.b.Audit[i]
		return append(args, nullIDRef(&e.RecordID), &s.leaves[i], &e.Hash)
	}, nil)
	if err != nil {
		return nil, err
	}
	seq := head + int64(len(s.b.Audit))
	// The head references the last entry, which no other entry does yet:
	// so the last one cannot be overwritten either (00009_audit_chain_keys).
	q := newTxStmts(ctx, tx)
	if _, err := q.ExecContext(ctx, `UPDATE audit_head SET seq = ?`, seq); err != nil {
		return nil, err
	}
	if s.notary == nil {
		return nil, nil
	}
	<-s.exited
	if s.cpErr != nil {
		return nil, s.cpErr
	}
	cp := s.cp
	if cp.Size != seq {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Message: fmt.Sprintf("the notary signed a tree of %d entries, not %d", cp.Size, seq)}
	}
	_, err = q.ExecContext(ctx, `INSERT INTO checkpoints (size, root, note, at, state, last_hash) VALUES (?, ?, ?, ?, ?, ?)`,
		cp.Size, cp.Root, cp.Note, formatTime(cp.At), cp.State, cp.LastHash)
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// done stops the helper, if any, and waits for it: after it the batch's
// entries are the caller's again.
func (s *sealer) done() {
	if s == nil || s.exited == nil {
		return
	}
	s.stop.Store(true)
	<-s.exited
}

// txStmts is a commit's transaction whose queries run statements kept
// prepared on the writer connection (the context's stmtCache, as
// insert.run's): a commit ran a handful of one-row queries (the lease's
// epoch, the audit head, the latest checkpoint) and each was parsed again
// every time, on the commit's goroutine.
type txStmts struct {
	tx *sql.Tx
	c  *stmtCache
}

func newTxStmts(ctx context.Context, tx *sql.Tx) txStmts {
	return txStmts{tx: tx, c: stmtsOf(ctx)}
}

// stmt returns q prepared in the transaction, or nil when it is not
// prepared on the connection yet (it will be before the next commit).
func (t txStmts) stmt(ctx context.Context, q string) *sql.Stmt {
	if pre := t.c.get(q); pre != nil {
		return t.tx.StmtContext(ctx, pre)
	}
	return nil
}

func (t txStmts) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, q); st != nil {
		// The statement stays open until the transaction ends: the rows
		// use it.
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t txStmts) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t txStmts) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, q); st != nil {
		defer st.Close()
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}
