package postgres

import (
	"context"
	"fmt"

	"github.com/nhisync/nhisync"
)

// CreateToken stores a new token. It returns ECONFLICT when the name (or,
// impossibly, the hash) is taken, EINVALID for a bad name, role or hash.
func (s *Store) CreateToken(ctx context.Context, t *nhisync.Token) error {
	const op = "postgres.CreateToken"
	if err := nhisync.ValidTokenName(t.Name); err != nil {
		return err
	}
	if !t.Role.Valid() || len(t.Hash) != 32 {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("token %s needs a known role and a SHA-256 hash", t.Name)}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO tokens (name, role, hash, created, created_by) VALUES ($1, $2, $3, $4, $5)`,
		t.Name, string(t.Role), t.Hash, formatTime(t.Created), t.CreatedBy)
	if pgCode(err) == "23505" {
		return &nhisync.Error{Code: nhisync.ECONFLICT, Op: op, Message: fmt.Sprintf("a token named %s exists; revoke it first or pick another name", t.Name)}
	}
	return internal(op, err)
}

// Tokens returns every token, ordered by name.
func (s *Store) Tokens(ctx context.Context) ([]*nhisync.Token, error) {
	const op = "postgres.Tokens"
	rows, err := s.pool.Query(ctx, `SELECT name, role, hash, created, created_by FROM tokens ORDER BY name`)
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

// RevokeToken deletes the named token; ENOTFOUND when there is none.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	const op = "postgres.RevokeToken"
	tag, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE name = $1`, name)
	if err != nil {
		return internal(op, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(op, "token", name)
	}
	return nil
}
