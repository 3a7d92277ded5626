package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
)

// commitAttempts bounds the retries of a commit that hit a serialization
// failure or a deadlock.
const commitAttempts = 5

// beforeCommit, when set by a test, runs inside a commit's transaction
// after every write and before COMMIT; its error fails the attempt.
var beforeCommit func(ctx context.Context, tx pgx.Tx) error

// Commit writes the batch in one transaction, as the SQLite store does:
// records, links, conflicts, quarantine items, approvals and outbox writes
// are upserted (a later row of the same key in the batch wins), OutboxDone
// rows deleted, systems and meta set, then the audit entries appended and
// sealed and, with a notary, their checkpoint signed and stored. The
// transaction first takes the commit advisory lock (one commit at a time
// over every process on the database) and checks the batch's fence and
// outbox claim.
//
// It returns EINVALID for a caller bug, ECONFLICT when a record would take
// another's match key, the fence's lease was lost or the claim no longer
// holds its writes, EUNAVAIL when the
// connection was lost (nothing was written), and EINTERNAL otherwise.
func (s *Store) Commit(ctx context.Context, b *nhisync.Batch) error {
	const op = "postgres.Commit"
	if b == nil || b.Empty() {
		return nil
	}
	if err := b.Check(); err != nil {
		err.Op = op
		return err
	}
	saved := make([]nhisync.AuditEntry, len(b.Audit))
	for i, e := range b.Audit {
		saved[i] = *e
	}
	restore := func() {
		for i, e := range b.Audit {
			e.Seq, e.PrevHash, e.Hash, e.Time = saved[i].Seq, saved[i].PrevHash, saved[i].Hash, saved[i].Time
		}
	}
	notary := s.getNotary()
	var cp *nhisync.Checkpoint
	var err error
	for attempt := 1; ; attempt++ {
		cp, err = s.commit(ctx, b, notary)
		if err == nil {
			break
		}
		restore()
		if pgCode(err) == "42P10" && attempt < commitAttempts {
			// Another process's bulk window dropped links' key (bulk.go).
			if err := s.closeOthersWindow(ctx); err != nil {
				return internal(op, err)
			}
			continue
		}
		if !retryable(err) || attempt == commitAttempts {
			return internal(op, err)
		}
	}
	if cp != nil {
		if err := notary.Publish(cp); err != nil {
			return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: fmt.Sprintf(
				"the decisions and their checkpoint (size %d) are committed, but publishing the checkpoint failed: %s; fix audit.publish, then run again (the next checkpoint is published with it)",
				cp.Size, nhisync.ErrorMessage(err)), Err: err}
		}
	}
	return nil
}

func (s *Store) commit(ctx context.Context, b *nhisync.Batch, notary nhisync.Notary) (cp *nhisync.Checkpoint, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, commitLock); err != nil {
		return nil, err
	}
	if err = checkFence(ctx, tx, b.Fence); err != nil {
		return nil, err
	}
	if err = checkClaim(ctx, tx, b); err != nil {
		return nil, err
	}
	links := writeLinks
	if s.inBulk() {
		links = insertLinks
	}
	steps := []func(context.Context, pgx.Tx, *nhisync.Batch) error{
		writeRecords, links, writeConflicts, writeQuarantine, writeApprovals,
		writeOutbox, deleteOutbox, writeSystems, writeMeta,
	}
	for _, step := range steps {
		if err = step(ctx, tx, b); err != nil {
			return nil, err
		}
	}
	if cp, err = appendAudit(ctx, tx, b, notary); err != nil {
		return nil, err
	}
	if beforeCommit != nil {
		if err = beforeCommit(ctx, tx); err != nil {
			return nil, err
		}
	}
	return cp, tx.Commit(ctx)
}

// rowsPerStatement is how many rows one INSERT … SELECT FROM unnest(…)
// carries: one round trip and one plan for thousands of rows.
const rowsPerStatement = 5000

// lastWins returns the indexes of items keeping, for each key, only the
// last occurrence, in order of first appearance: one statement may not
// upsert a row twice.
func lastWins[T any, K comparable](items []T, key func(T) K) []int {
	if len(items) < 2 {
		if len(items) == 1 {
			return []int{0}
		}
		return nil
	}
	last := make(map[K]int, len(items))
	for i, it := range items {
		last[key(it)] = i
	}
	out := make([]int, 0, len(last))
	for i, it := range items {
		if last[key(it)] == i {
			out = append(out, i)
		}
	}
	return out
}

// chunks calls fn with consecutive parts of idx of at most
// rowsPerStatement.
func chunks(idx []int, fn func(part []int) error) error {
	for start := 0; start < len(idx); start += rowsPerStatement {
		if err := fn(idx[start:min(start+rowsPerStatement, len(idx))]); err != nil {
			return err
		}
	}
	return nil
}

func writeRecords(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	idx := lastWins(b.Records, func(r *nhisync.Record) int64 { return r.ID })
	return chunks(idx, func(part []int) error {
		ids := make([]int64, len(part))
		kinds := make([]string, len(part))
		mkeys := make([]string, len(part))
		keys := make([]string, len(part))
		states := make([][]byte, len(part))
		for j, i := range part {
			r := b.Records[i]
			ids[j], kinds[j], mkeys[j], keys[j], states[j] = r.ID, r.Kind, r.MatchKey, r.Key, encodeRecordState(nil, r)
		}
		_, err := tx.Exec(ctx, `INSERT INTO records (id, kind, match_key, key, state)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[])
			ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, match_key = excluded.match_key, key = excluded.key, state = excluded.state`,
			ids, kinds, mkeys, keys, states)
		if pgCode(err) == "23505" {
			return &nhisync.Error{Code: nhisync.ECONFLICT, Message: "two records of one kind would have the same match key: " + pgMessage(err), Err: err}
		}
		return err
	})
}

// writeLinks upserts the batch's links.
func writeLinks(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	return putLinks(ctx, tx, b, `ON CONFLICT (system, ext_id) DO UPDATE SET record_id = excluded.record_id, status = excluded.status, hash = excluded.hash, state = excluded.state`)
}

// insertLinks inserts the batch's links, which the store does not hold:
// inside the bulk window links have no key for ON CONFLICT (bulk.go).
func insertLinks(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	return putLinks(ctx, tx, b, "")
}

// putLinks inserts the batch's links (the last of each key) with the
// conflict clause onConflict, and stores a new links version when they
// change a head (without onConflict, in the bulk window, every link is
// new).
func putLinks(ctx context.Context, tx pgx.Tx, b *nhisync.Batch, onConflict string) error {
	type key struct{ sys, ext string }
	idx := lastWins(b.Links, func(l *nhisync.Link) key { return key{l.System, l.ExternalID} })
	versioned := false
	return chunks(idx, func(part []int) error {
		systems := make([]string, len(part))
		exts := make([]string, len(part))
		recs := make([]*int64, len(part))
		statuses := make([]string, len(part))
		hashes := make([][]byte, len(part))
		states := make([][]byte, len(part))
		for j, i := range part {
			l := b.Links[i]
			systems[j], exts[j], statuses[j], hashes[j], states[j] = l.System, l.ExternalID, string(l.Status), l.Hash, encodeLinkState(nil, l)
			if l.RecordID != 0 {
				id := l.RecordID
				recs[j] = &id
			}
		}
		if !versioned {
			changed := onConflict == ""
			if !changed {
				var err error
				if changed, err = headsChange(ctx, tx, systems, exts, recs, statuses, hashes); err != nil {
					return err
				}
			}
			if changed {
				if err := newLinksVersion(ctx, tx); err != nil {
					return err
				}
				versioned = true
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO links (system, ext_id, record_id, status, hash, state)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::bytea[]) `+onConflict,
			systems, exts, recs, statuses, hashes, states)
		if pgCode(err) == "23503" {
			return &nhisync.Error{Code: nhisync.EINVALID, Message: "a link in the batch names a record that does not exist: " + pgMessage(err), Err: err}
		}
		return err
	})
}

// jsonData returns v as JSON text; a failure is kept in *failed.
func jsonData(v any, failed *error) string {
	data, err := json.Marshal(v)
	if err != nil && *failed == nil {
		*failed = err
	}
	return string(data)
}

func writeConflicts(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	var failed error
	idx := lastWins(b.Conflicts, func(c *nhisync.Conflict) int64 { return c.ID })
	err := chunks(idx, func(part []int) error {
		ids, recs := make([]int64, len(part)), make([]int64, len(part))
		kinds, fields, statuses, systems, data := make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part))
		for j, i := range part {
			c := b.Conflicts[i]
			var sys []byte
			sys = append(sys, ',')
			for _, p := range c.Proposals {
				sys = append(append(sys, p.System...), ',')
			}
			ids[j], recs[j], kinds[j], fields[j], statuses[j], systems[j], data[j] = c.ID, c.RecordID, c.Kind, c.Field, c.Status, string(sys), jsonData(c, &failed)
		}
		_, err := tx.Exec(ctx, `INSERT INTO conflicts (id, kind, record_id, field, status, systems, data)
			SELECT id, kind, rec, field, status, array_remove(string_to_array(sys, ','), ''), data
			FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(id, kind, rec, field, status, sys, data)
			ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, record_id = excluded.record_id, field = excluded.field,
				status = excluded.status, systems = excluded.systems, data = excluded.data`,
			ids, kinds, recs, fields, statuses, systems, data)
		return err
	})
	return errors.Join(failed, err)
}

func writeQuarantine(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	return writeItems(ctx, tx, "quarantine", b.Quarantine, func(q *nhisync.QuarantineItem) (int64, string, int64, string, string, string) {
		return q.ID, q.Kind, q.RecordID, q.Field, q.System, q.Status
	})
}

func writeApprovals(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	return writeItems(ctx, tx, "approvals", b.Approvals, func(a *nhisync.Approval) (int64, string, int64, string, string, string) {
		return a.ID, a.Kind, a.RecordID, a.Field, a.System, a.Status
	})
}

// writeItems upserts quarantine items or approvals: tables of the same
// shape, their filtered columns from cols and the whole item as JSON.
func writeItems[T any](ctx context.Context, tx pgx.Tx, table string, items []T, cols func(T) (id int64, kind string, rec int64, field, system, status string)) error {
	var failed error
	idx := lastWins(items, func(it T) int64 { id, _, _, _, _, _ := cols(it); return id })
	err := chunks(idx, func(part []int) error {
		ids, recs := make([]int64, len(part)), make([]int64, len(part))
		kinds, fields, systems, statuses, data := make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part))
		for j, i := range part {
			ids[j], kinds[j], recs[j], fields[j], systems[j], statuses[j] = cols(items[i])
			data[j] = jsonData(items[i], &failed)
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+table+` (id, kind, record_id, field, system, status, data)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
			ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, record_id = excluded.record_id, field = excluded.field,
				system = excluded.system, status = excluded.status, data = excluded.data`,
			ids, kinds, recs, fields, systems, statuses, data)
		return err
	})
	return errors.Join(failed, err)
}

func writeOutbox(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	var failed error
	idx := lastWins(b.Outbox, func(w *nhisync.OutboxWrite) int64 { return w.ID })
	err := chunks(idx, func(part []int) error {
		ids, recs := make([]int64, len(part)), make([]int64, len(part))
		systems, exts, fields, statuses, next, data := make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part))
		for j, i := range part {
			w := b.Outbox[i]
			ids[j], systems[j], exts[j], recs[j], fields[j], statuses[j], next[j], data[j] = w.ID, w.System, w.ExternalID, w.RecordID, w.Field, w.Status, formatTime(w.NextAt), jsonData(w, &failed)
		}
		_, err := tx.Exec(ctx, `INSERT INTO outbox (id, system, ext_id, record_id, field, status, next_at, data)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[])
			ON CONFLICT (id) DO UPDATE SET system = excluded.system, ext_id = excluded.ext_id, record_id = excluded.record_id,
				field = excluded.field, status = excluded.status, next_at = excluded.next_at, data = excluded.data,
				claim_token = 0, claim_holder = '', claim_until = ''`,
			ids, systems, exts, recs, fields, statuses, next, data)
		return err
	})
	return errors.Join(failed, err)
}

func deleteOutbox(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	if len(b.OutboxDone) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = ANY($1)`, b.OutboxDone)
	return err
}

func writeSystems(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	var failed error
	idx := lastWins(b.Systems, func(st *nhisync.SystemState) string { return st.Name })
	names, data := make([]string, len(idx)), make([]string, len(idx))
	for j, i := range idx {
		names[j], data[j] = b.Systems[i].Name, jsonData(b.Systems[i], &failed)
	}
	if len(idx) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO systems (name, data) SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT (name) DO UPDATE SET data = excluded.data`, names, data)
	return errors.Join(failed, err)
}

func writeMeta(ctx context.Context, tx pgx.Tx, b *nhisync.Batch) error {
	if len(b.Meta) == 0 {
		return nil
	}
	keys := sortedKeys(b.Meta)
	values := make([]string, len(keys))
	for i, k := range keys {
		values[i] = b.Meta[k]
	}
	_, err := tx.Exec(ctx, `INSERT INTO meta (key, value) SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, keys, values)
	return err
}

// NewIDs reserves n consecutive IDs from the one counter shared by
// records and items and returns the first; the first ID ever handed out
// is 1. The UPDATE's row lock keeps concurrent ranges apart. It returns
// EINVALID when n < 1.
func (s *Store) NewIDs(ctx context.Context, n int) (int64, error) {
	const op = "postgres.NewIDs"
	if n < 1 {
		return 0, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("cannot reserve %d IDs", n)}
	}
	var first int64
	err := s.pool.QueryRow(ctx, `UPDATE ids SET next = next + $1 WHERE name = 'id' RETURNING next - $1`, int64(n)).Scan(&first)
	if err != nil {
		return 0, internal(op, err)
	}
	return first, nil
}
