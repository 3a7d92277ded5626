package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// Conflicts, quarantine items, approvals and outbox writes are stored whole
// as JSON (the data column), next to copies of the members queries filter
// on.

// Conflicts returns the conflicts f selects, ordered by ID. f.System
// selects conflicts holding a proposal from that system. Storage failures
// are EINTERNAL.
func (s *Store) Conflicts(ctx context.Context, f nhisync.ItemFilter) ([]*nhisync.Conflict, error) {
	where, args := itemWhere(f, `instr(systems, ',' || ? || ',') > 0`)
	return listItems[nhisync.Conflict](ctx, s, "sqlite.Conflicts", `SELECT data FROM conflicts`+where+` ORDER BY id`+limitClause(f), args)
}

// Conflict returns one conflict; ENOTFOUND when there is none with id.
func (s *Store) Conflict(ctx context.Context, id int64) (*nhisync.Conflict, error) {
	return getItem[nhisync.Conflict](ctx, s, "sqlite.Conflict", "conflict", `SELECT data FROM conflicts WHERE id = ?`, id)
}

// QuarantineItems returns the quarantine items f selects, ordered by ID.
// Storage failures are EINTERNAL.
func (s *Store) QuarantineItems(ctx context.Context, f nhisync.ItemFilter) ([]*nhisync.QuarantineItem, error) {
	where, args := itemWhere(f, `system = ?`)
	return listItems[nhisync.QuarantineItem](ctx, s, "sqlite.QuarantineItems", `SELECT data FROM quarantine`+where+` ORDER BY id`+limitClause(f), args)
}

// QuarantineItem returns one quarantine item; ENOTFOUND when there is none
// with id.
func (s *Store) QuarantineItem(ctx context.Context, id int64) (*nhisync.QuarantineItem, error) {
	return getItem[nhisync.QuarantineItem](ctx, s, "sqlite.QuarantineItem", "quarantine item", `SELECT data FROM quarantine WHERE id = ?`, id)
}

// Approvals returns the approvals f selects, ordered by ID. Storage
// failures are EINTERNAL.
func (s *Store) Approvals(ctx context.Context, f nhisync.ItemFilter) ([]*nhisync.Approval, error) {
	where, args := itemWhere(f, `system = ?`)
	return listItems[nhisync.Approval](ctx, s, "sqlite.Approvals", `SELECT data FROM approvals`+where+` ORDER BY id`+limitClause(f), args)
}

// Approval returns one approval; ENOTFOUND when there is none with id.
func (s *Store) Approval(ctx context.Context, id int64) (*nhisync.Approval, error) {
	return getItem[nhisync.Approval](ctx, s, "sqlite.Approval", "approval", `SELECT data FROM approvals WHERE id = ?`, id)
}

// OutboxWrites returns queued writes of system ("" for all) with the
// status ("" for all) whose NextAt is at or before due (zero for any
// time), ordered by NextAt then ID, at most limit (0 for no limit).
// Storage failures are EINTERNAL.
func (s *Store) OutboxWrites(ctx context.Context, system, status string, due time.Time, limit int) ([]*nhisync.OutboxWrite, error) {
	var conds []string
	var args []any
	if system != "" {
		conds, args = append(conds, `system = ?`), append(args, system)
	}
	if status != "" {
		conds, args = append(conds, `status = ?`), append(args, status)
	}
	if !due.IsZero() {
		conds, args = append(conds, `next_at <= ?`), append(args, formatTime(due))
	}
	q := `SELECT data FROM outbox` + whereClause(conds) + ` ORDER BY next_at, id`
	if limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, limit)
	}
	return listItems[nhisync.OutboxWrite](ctx, s, "sqlite.OutboxWrites", q, args)
}

// itemWhere turns a filter into a WHERE clause; bySystem is the condition
// for f.System.
func itemWhere(f nhisync.ItemFilter, bySystem string) (string, []any) {
	var conds []string
	var args []any
	if f.Status != "" {
		conds, args = append(conds, `status = ?`), append(args, f.Status)
	}
	if f.RecordID != 0 {
		conds, args = append(conds, `record_id = ?`), append(args, f.RecordID)
	}
	if f.Kind != "" {
		conds, args = append(conds, `kind = ?`), append(args, f.Kind)
	}
	if f.System != "" {
		conds, args = append(conds, bySystem), append(args, f.System)
	}
	if f.After != 0 {
		conds, args = append(conds, `id > ?`), append(args, f.After)
	}
	return whereClause(conds), args
}

// limitClause is the LIMIT of a keyset page (none for 0).
func limitClause(f nhisync.ItemFilter) string {
	if f.Limit <= 0 {
		return ""
	}
	return fmt.Sprintf(` LIMIT %d`, f.Limit)
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(conds, ` AND `)
}

func listItems[T any](ctx context.Context, s *Store, op, query string, args []any) ([]*T, error) {
	var out []*T
	err := queryItems(ctx, s.r, query, args, func(it *T) error {
		out = append(out, it)
		return nil
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return out, nil
}

func getItem[T any](ctx context.Context, s *Store, op, what, query string, id int64) (*T, error) {
	var out *T
	err := queryItems(ctx, s.r, query, []any{id}, func(it *T) error {
		out = it
		return nil
	})
	if err != nil {
		return nil, internal(op, err)
	}
	if out == nil {
		return nil, notFound(op, what, id)
	}
	return out, nil
}

// queryItems runs a query selecting one JSON column and passes each row,
// decoded as a T, to fn.
func queryItems[T any](ctx context.Context, q querier, query string, args []any, fn func(*T) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return err
		}
		it := new(T)
		var err error
		if w, ok := any(it).(*nhisync.OutboxWrite); ok {
			err = decodeOutboxWrite(data, w) // claims read many
		} else {
			err = json.Unmarshal(data, it)
		}
		if err != nil {
			return fmt.Errorf("decode %T: %w", it, err)
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return rows.Err()
}
