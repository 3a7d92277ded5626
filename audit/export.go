package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/nhisync/nhisync"
)

// Export writes the entries with from <= seq < to (to 0: to the end) as
// JSONL: one entry's JSON per line, hash included, in seq order. A line
// without its "hash" member is the entry's leaf bytes, so an exported log
// can be re-hashed and checked without nhisync. Errors: EINVALID for a
// bad range, EUNAVAIL when ctx ends, EINTERNAL when w fails, and the
// store's codes.
func Export(ctx context.Context, log Log, w io.Writer, from, to int64) error {
	const op = "audit.Export"
	if from < 0 || to < 0 || (to != 0 && to < from) {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op,
			Message: fmt.Sprintf("entries %d to %d: need 0 <= FROM <= TO (TO 0 for the end)", from, to)}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	var b []byte
	err := log.ScanAudit(ctx, from, to, func(e *nhisync.AuditEntry, leaf []byte) error {
		if n++; n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var err error
		if b, err = exportLine(b[:0], e, leaf); err != nil {
			return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot encode entry %d", e.Seq), Err: err}
		}
		if _, err := bw.Write(b); err != nil {
			return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "writing the export failed", Err: err}
		}
		return nil
	})
	if err != nil {
		return wrap(op, err)
	}
	if err := bw.Flush(); err != nil {
		return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "writing the export failed", Err: err}
	}
	return nil
}

// exportLine appends the export line of e, whose stored leaf is leaf: the
// leaf as stored with the stored hash as its last member, so that the
// line without it is the leaf even when leaves were encoded otherwise
// then (as with "old":null before absent values were left out). A leaf
// that is not a JSON object is written as the entry's JSON.
func exportLine(b []byte, e *nhisync.AuditEntry, leaf []byte) ([]byte, error) {
	if n := len(leaf); n >= 2 && leaf[0] == '{' && leaf[n-1] == '}' {
		h, err := json.Marshal(e.Hash)
		if err != nil {
			return b, err
		}
		b = append(b, leaf[:n-1]...)
		if n > 2 {
			b = append(b, ',')
		}
		b = append(b, `"hash":`...)
		b = append(b, h...)
		return append(b, '}', '\n'), nil
	}
	c := *e
	c.Time = c.Time.UTC() // as in the leaf
	j, err := json.Marshal(&c)
	if err != nil {
		return b, err
	}
	b = append(b, j...)
	return append(b, '\n'), nil
}
