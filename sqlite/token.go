package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/nhisync/nhisync"
	sqlite3 "modernc.org/sqlite/lib"
)

// CreateToken stores a new token. It returns ECONFLICT when the name (or,
// impossibly, the hash) is taken, EINVALID for a bad name, role or hash,
// and EINTERNAL for storage failures.
func (s *Store) CreateToken(ctx context.Context, t *nhisync.Token) error {
	const op = "sqlite.CreateToken"
	if err := nhisync.ValidTokenName(t.Name); err != nil {
		return err
	}
	if !t.Role.Valid() || len(t.Hash) != 32 {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("token %s needs a known role and a SHA-256 hash", t.Name)}
	}
	err := s.durably(ctx, op, func() error {
		_, err := s.w.ExecContext(ctx, `INSERT INTO tokens (name, role, hash, created, created_by) VALUES (?, ?, ?, ?, ?)`,
			t.Name, string(t.Role), t.Hash, formatTime(t.Created), t.CreatedBy)
		return err
	})
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return &nhisync.Error{Code: nhisync.ECONFLICT, Op: op, Message: fmt.Sprintf("a token named %s exists; revoke it first or pick another name", t.Name)}
	}
	return internal(op, err)
}

// Tokens returns every token, ordered by name. Storage failures are
// EINTERNAL.
func (s *Store) Tokens(ctx context.Context) ([]*nhisync.Token, error) {
	const op = "sqlite.Tokens"
	rows, err := s.r.QueryContext(ctx, `SELECT name, role, hash, created, created_by FROM tokens ORDER BY name`)
	if err != nil {
		return nil, internal(op, err)
	}
	defer rows.Close()
	var out []*nhisync.Token
	for rows.Next() {
		var t nhisync.Token
		var role, created string
		if err := rows.Scan(&t.Name, &role, &t.Hash, &created, &t.CreatedBy); err != nil {
			return nil, internal(op, err)
		}
		t.Role = nhisync.Role(role)
		if t.Created, err = parseTime(created); err != nil {
			return nil, internal(op, err)
		}
		out = append(out, &t)
	}
	return out, internal(op, rows.Err())
}

// RevokeToken deletes the named token, so its secret stops working at
// once. It returns ENOTFOUND when there is no such token and EINTERNAL for
// storage failures.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	const op = "sqlite.RevokeToken"
	var res sql.Result
	err := s.durably(ctx, op, func() (err error) {
		res, err = s.w.ExecContext(ctx, `DELETE FROM tokens WHERE name = ?`, name)
		return err
	})
	if err != nil {
		return internal(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(op, err)
	} else if n == 0 {
		return notFound(op, "token", name)
	}
	return nil
}
