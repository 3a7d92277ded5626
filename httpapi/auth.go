package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// principal is who is calling: a token's name and role, or a person signed
// in to the console with OIDC.
type principal struct {
	name string
	role nhisync.Role
	// token is set when the principal came from a token (so a console
	// session ends when the token is revoked).
	token bool
}

// authenticate finds the token of an "Authorization: Bearer" header. It
// returns an error with codeUnauthorized when there is none or it is
// unknown (revoked tokens are deleted, so they are unknown).
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, nhisync.Errorf(codeUnauthorized, "no token: send Authorization: Bearer TOKEN (make one with `nhisync token create NAME --role viewer`)")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return nil, nhisync.Errorf(codeUnauthorized, "the Authorization header must be: Bearer TOKEN")
	}
	return s.lookupToken(r.Context(), strings.TrimSpace(secret))
}

// lookupToken finds the stored token of a secret.
func (s *Server) lookupToken(ctx context.Context, secret string) (*principal, error) {
	toks, err := s.opt.Store.Tokens(ctx)
	if err != nil {
		return nil, err
	}
	t := nhisync.MatchToken(toks, secret)
	if t == nil {
		return nil, nhisync.Errorf(codeUnauthorized, "unknown or revoked token")
	}
	return &principal{name: t.Name, role: t.Role, token: true}, nil
}

// forbidden is the 403 of a role too low for op.
func forbidden(p *principal, op operation) error {
	return nhisync.Errorf(nhisync.EFORBIDDEN, "%s needs the %s role; token %s has %s", op.ID, op.Role, p.name, p.role)
}

// authed wraps an operation: token, role, then the handler; every error
// is written in the error shape and logged (never the token).
func (s *Server) authed(op operation, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c := &call{w: w, r: r}
		err := func() error {
			p, err := s.authenticate(r)
			if err != nil {
				return err
			}
			c.who = p
			if !p.role.Includes(op.Role) {
				return forbidden(p, op)
			}
			return h(s, c)
		}()
		who := ""
		if c.who != nil {
			who = c.who.name
		}
		if err != nil {
			code := nhisync.ErrorCode(err)
			if code == nhisync.EINTERNAL || code == nhisync.EUNAVAIL {
				s.log.Error("api request failed", "op", op.ID, "path", r.URL.Path, "caller", who, "err", err)
			} else {
				s.log.Info("api request refused", "op", op.ID, "caller", who, "code", code, "reason", nhisync.ErrorMessage(err))
			}
			writeError(w, r, err)
			return
		}
		s.log.Debug("api request", "op", op.ID, "caller", who, "took", time.Since(start))
	})
}

// String names a principal for messages.
func (p *principal) String() string { return fmt.Sprintf("%s (%s)", p.name, p.role) }
