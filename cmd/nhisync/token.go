package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
)

// tokenJSON is `token create -o json` (SPEC §7): the secret appears here
// once and is never stored.
type tokenJSON struct {
	Name  string       `json:"name"`
	Role  nhisync.Role `json:"role"`
	Token string       `json:"token"`
}

func tokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "API and console tokens: create, list, revoke",
		Long: `Bearer tokens for the API and the console of ` + "`nhisync serve`" + `. Roles, each
including the ones before: viewer (read everything), steward (resolve
conflicts, dismiss quarantine), approver (approve and reject held writes),
admin (start passes, manage tokens). A token's name is the actor the audit
log records for what its holder does. Only a hash of each token is stored:
the secret is printed once, by create.`,
		Args: unknownCommand,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	var role, as string
	create := &cobra.Command{
		Use:   "create NAME --role viewer|steward|approver|admin",
		Short: "Create a token and print its secret (once)",
		Args:  exactArgs(1, "NAME --role ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return usagef("give the token's role: --role viewer|steward|approver|admin")
			}
			r, err := nhisync.ParseRole(role)
			if err != nil {
				return &usageError{err}
			}
			if err := nhisync.ValidTokenName(args[0]); err != nil {
				return &usageError{err}
			}
			who, err := actor(as)
			if err != nil {
				return err
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				secret, hash, err := nhisync.NewTokenSecret()
				if err != nil {
					return err
				}
				now := time.Now().UTC()
				t := &nhisync.Token{Name: args[0], Role: r, Hash: hash, Created: now, CreatedBy: who}
				if err := createToken(cmd.Context(), a, t, who); err != nil {
					return err
				}
				if a.out.json {
					return a.out.JSON(tokenJSON{Name: t.Name, Role: t.Role, Token: secret})
				}
				a.out.Printf("Token %s (%s) created. It is shown only now; keep it secret:\n\n%s\n\nUse it as  Authorization: Bearer TOKEN  or paste it on the console's /login page.\n", t.Name, t.Role, secret)
				return nil
			})
		},
	}
	create.Flags().StringVar(&role, "role", "", "viewer, steward, approver or admin")
	create.Flags().StringVar(&as, "as", "", "who creates it, for the audit log (default $NHISYNC_ACTOR, else the OS user)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (names and roles; secrets are never stored)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.with(cmd.Context(), false, func(a *app) error {
				ts, err := a.store.Tokens(cmd.Context())
				if err != nil {
					return err
				}
				if a.out.json {
					if ts == nil {
						ts = []*nhisync.Token{}
					}
					return a.out.JSON(ts)
				}
				if len(ts) == 0 {
					a.out.Printf("No tokens. Create one with: nhisync token create NAME --role viewer\n")
					return nil
				}
				var rows [][]string
				for _, t := range ts {
					rows = append(rows, []string{t.Name, string(t.Role), t.Created.Format(time.RFC3339), t.CreatedBy})
				}
				a.out.Table([]string{"name", "role", "created", "created by"}, rows)
				return nil
			})
		},
	}
	var revokeAs string
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: it stops working at once",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			who, err := actor(revokeAs)
			if err != nil {
				return err
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				if err := revokeToken(cmd.Context(), a, args[0], who); err != nil {
					if nhisync.ErrorCode(err) == nhisync.ENOTFOUND {
						return nhisync.Errorf(nhisync.ENOTFOUND, "no token named %s; see `nhisync token list`", args[0])
					}
					return err
				}
				if a.out.json {
					return a.out.JSON(map[string]string{"name": args[0], "status": "revoked"})
				}
				a.out.Printf("Token %s revoked.\n", args[0])
				return nil
			})
		},
	}
	revoke.Flags().StringVar(&revokeAs, "as", "", "who revokes it, for the audit log (default $NHISYNC_ACTOR, else the OS user)")
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// createToken stores a token and audits its creation (name and role,
// never the secret or its hash).
func createToken(ctx context.Context, a *app, t *nhisync.Token, who string) error {
	if err := a.store.CreateToken(ctx, t); err != nil {
		return err
	}
	return a.auditTokenChange(ctx, nhisync.ActTokenCreated, who, fmt.Sprintf("token %s, role %s", t.Name, t.Role))
}

// revokeToken deletes a token and audits it.
func revokeToken(ctx context.Context, a *app, name, who string) error {
	if err := a.store.RevokeToken(ctx, name); err != nil {
		return err
	}
	return a.auditTokenChange(ctx, nhisync.ActTokenRevoked, who, "token "+name)
}

func (a *app) auditTokenChange(ctx context.Context, action, who, reason string) error {
	e := &nhisync.AuditEntry{Time: time.Now().UTC(), Actor: nhisync.Person(who), Action: action, Reason: reason}
	// The store signs the entry's checkpoint in the same transaction.
	return a.store.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{e}})
}
