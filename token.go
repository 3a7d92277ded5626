package nhisync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Role is what the holder of an API or console token may do (SPEC §7).
// Each role includes the ones before it.
type Role string

// The roles, lowest first.
const (
	RoleViewer   Role = "viewer"   // read everything
	RoleSteward  Role = "steward"  // resolve conflicts, dismiss quarantine
	RoleApprover Role = "approver" // approve and reject held writes
	RoleAdmin    Role = "admin"    // start passes, manage tokens
)

// Roles lists the roles, lowest first.
var Roles = []Role{RoleViewer, RoleSteward, RoleApprover, RoleAdmin}

// rank returns a role's place in Roles (-1 for an unknown role).
func (r Role) rank() int {
	for i, x := range Roles {
		if x == r {
			return i
		}
	}
	return -1
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() >= 0 }

// Includes reports whether r may do what need may: r ranks at least as
// high. An unknown role includes nothing.
func (r Role) Includes(need Role) bool {
	return r.rank() >= 0 && need.rank() >= 0 && r.rank() >= need.rank()
}

// ParseRole returns the role named s; EINVALID names the roles otherwise.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", Errorf(EINVALID, "no role %q; the roles are viewer, steward, approver, admin (each includes the ones before)", s)
	}
	return r, nil
}

// Audit actions of token management.
const (
	ActTokenCreated = "token.created"
	ActTokenRevoked = "token.revoked"
)

// Token is a named bearer credential of the API and console. Only the
// SHA-256 hash of the secret is kept: tokens are 256 random bits, so a fast
// hash is enough, and a stolen store yields no usable token.
type Token struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Hash    []byte    `json:"-"`
	Created time.Time `json:"created"`
	// CreatedBy is who made it (the operating-system user or an admin
	// token's name).
	CreatedBy string `json:"created_by,omitempty"`
}

// tokenPrefix makes the secret recognizable to secret scanners and people.
const tokenPrefix = "nhs_"

// NewTokenSecret returns a fresh secret (256 random bits) and its hash.
func NewTokenSecret() (secret string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, &Error{Code: EINTERNAL, Op: "nhisync.NewTokenSecret", Message: "no randomness for a token", Err: err}
	}
	secret = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret), nil
}

// HashToken returns the stored form of a token secret.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// MatchToken returns the token among tokens whose hash is that of secret,
// or nil. Every hash is compared in constant time and the loop never stops
// early, so the time taken tells nothing about which bytes matched.
func MatchToken(tokens []*Token, secret string) *Token {
	h := HashToken(secret)
	var found *Token
	for _, t := range tokens {
		if subtle.ConstantTimeCompare(t.Hash, h) == 1 {
			found = t
		}
	}
	return found
}

// ValidTokenName checks a token's name, which is the actor recorded in the
// audit log for what its holder does: 1–64 letters, digits, '.', '_', '-'
// or '@'.
func ValidTokenName(name string) error {
	ok := name != "" && len(name) <= 64
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)) {
			ok = false
		}
	}
	if !ok {
		return Errorf(EINVALID, "token name %q: use 1-64 letters, digits, '.', '_', '-' or '@' (it is the name the audit log records)", name)
	}
	return nil
}

// TokenStore keeps API and console tokens.
type TokenStore interface {
	// CreateToken stores a new token. ECONFLICT when the name is taken,
	// EINVALID for a bad name or role, EINTERNAL for storage failures.
	CreateToken(ctx context.Context, t *Token) error
	// Tokens returns every token, ordered by name.
	Tokens(ctx context.Context) ([]*Token, error)
	// RevokeToken deletes the named token; ENOTFOUND when there is none.
	RevokeToken(ctx context.Context, name string) error
}

// String describes a token without its secret.
func (t *Token) String() string { return fmt.Sprintf("%s (%s)", t.Name, t.Role) }
