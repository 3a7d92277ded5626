package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
)

// Listings never print the value of a sensitive field (sensitive: true):
// they print nhisync.Redacted instead, in tables and in JSON alike (the
// engine's Redact* methods, which the API uses too). A steward who must
// see one passes --reveal, which is itself audited (sensitive.revealed,
// with who and what).

// revealFlag adds --reveal to a command that prints field values.
func revealFlag(cmd *cobra.Command, reveal *bool) {
	cmd.Flags().BoolVar(reveal, "reveal", false, "print the values of sensitive fields in clear (audited: sensitive.revealed with who and what)")
}

// revealed audits a --reveal: who printed sensitive values, with which
// command, about which record (recordID 0 for a listing). The store signs
// the entry's checkpoint in the same transaction.
func (a *app) revealed(ctx context.Context, what string, kind string, recordID int64, record, field string) error {
	who, err := actor("")
	if err != nil {
		return err
	}
	e := &nhisync.AuditEntry{Time: time.Now().UTC(), Actor: nhisync.Person(who), Action: nhisync.ActSensitiveRevealed,
		Kind: kind, RecordID: recordID, Record: record, Field: field, Reason: what + " --reveal"}
	return a.store.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{e}})
}
