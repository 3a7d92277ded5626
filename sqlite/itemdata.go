package sqlite

import (
	"strings"

	"github.com/nhisync/nhisync"
)

// itemData are the JSON data columns of a batch's conflicts, quarantine
// items, approvals, outbox writes and systems (and its conflicts' systems
// column), encoded by a helper goroutine while the commit's goroutine runs
// the records' and links' statements before them: the commit goroutine is
// the first pass's critical path, and a first pass's outbox writes alone
// cost it 0.05-0.15 CPU-s in json.Marshal at 100k.
type itemData struct {
	conflicts, conflictSystems []string
	quarantine, approvals      []string
	outbox, systems            []string
	// failed is the first encoding failure, which fails the commit.
	failed error
	exited chan struct{}
}

// encodeItemData starts encoding b's items; it returns nil when b has
// none. The caller must call wait before reading the data, and before the
// batch is handed back (the helper reads it).
func encodeItemData(b *nhisync.Batch) *itemData {
	if len(b.Conflicts)+len(b.Quarantine)+len(b.Approvals)+len(b.Outbox)+len(b.Systems) == 0 {
		return nil
	}
	d := &itemData{exited: make(chan struct{})}
	go d.encode(b)
	return d
}

func (d *itemData) encode(b *nhisync.Batch) {
	defer close(d.exited)
	if n := len(b.Conflicts); n > 0 {
		d.conflicts, d.conflictSystems = make([]string, n), make([]string, n)
		var systems strings.Builder
		for i, c := range b.Conflicts {
			systems.Reset()
			systems.WriteByte(',')
			for _, p := range c.Proposals {
				systems.WriteString(p.System)
				systems.WriteByte(',')
			}
			d.conflictSystems[i] = systems.String()
			d.conflicts[i] = jsonData(c, &d.failed)
		}
	}
	d.quarantine = encodeAll(b.Quarantine, &d.failed)
	d.approvals = encodeAll(b.Approvals, &d.failed)
	d.outbox = encodeOutbox(b.Outbox, &d.failed)
	d.systems = encodeAll(b.Systems, &d.failed)
}

// encodeAll returns each item as JSON text (nil for no items).
func encodeAll[T any](items []T, failed *error) []string {
	if len(items) == 0 {
		return nil
	}
	out := make([]string, len(items))
	for i, v := range items {
		out[i] = jsonData(v, failed)
	}
	return out
}

// encodeOutbox returns each write as JSON text (nil for no writes), as
// encodeAll does, byte for byte, but through OutboxWrite.AppendJSON
// (encoding/json for a write it declines): json.Marshal's reflection was
// most of encoding a first pass's writes (0.36 CPU-s at 300k NHIs).
func encodeOutbox(writes []*nhisync.OutboxWrite, failed *error) []string {
	if len(writes) == 0 {
		return nil
	}
	out := make([]string, len(writes))
	var buf []byte
	for i, w := range writes {
		var ok bool
		if buf, ok = w.AppendJSON(buf[:0]); ok {
			out[i] = string(buf)
		} else {
			out[i] = jsonData(w, failed)
		}
	}
	return out
}

// wait waits for the helper; a nil itemData (no items) has nothing to
// wait for.
func (d *itemData) wait() *itemData {
	if d != nil {
		<-d.exited
	}
	return d
}
