package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
)

// metaLister is what a store offers to list its settings (both stores
// do); store copy needs it to carry every one.
type metaLister interface {
	MetaAll(ctx context.Context) (map[string]string, error)
}

// copyPage is how many rows store copy commits per transaction.
const copyPage = 2000

// copyCounts is what store copy reports (-o json).
type copyCounts struct {
	Records     int    `json:"records"`
	Links       int    `json:"links"`
	Conflicts   int    `json:"conflicts"`
	Quarantine  int    `json:"quarantine"`
	Approvals   int    `json:"approvals"`
	Outbox      int    `json:"outbox"`
	Systems     int    `json:"systems"`
	Tokens      int    `json:"tokens"`
	Audit       int64  `json:"audit_entries"`
	Checkpoints int    `json:"checkpoints"`
	LastHash    string `json:"audit_last_hash"`
}

func storeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "The store itself: copy a workspace to another store",
		Args:  unknownCommand,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	var to string
	var force bool
	cp := &cobra.Command{
		Use:   "copy --to STORE_URL [--force]",
		Short: "Copy this workspace's store (records, links, open work, outbox, tokens, the whole audit log) into another store",
		Long: `Copy everything the configured store holds into the store STORE_URL
(sqlite:PATH or postgres://USER@HOST:5432/DB): golden records, links, open
conflicts, quarantine items and approvals, the outbox, systems' state,
settings, API tokens, and the whole audit log with its signed checkpoints,
entry by entry with the same leaf bytes, so ` + "`audit verify`" + ` on the copy
reports the same root. Stop every sync and serve on the workspace first.
Then point store: at the copy.

A target that already holds anything is refused unless --force. With
--force, rows are overwritten and the audit log is continued only when the
target's log is the start of this one (a copy that was interrupted); a
target whose audit log differs cannot be fixed (the log is append-only):
copy into an empty database or file.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("give the target store: --to sqlite:PATH or --to postgres://USER@HOST:5432/DB")
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				dst, err := openStoreURL(cmd.Context(), to)
				if err != nil {
					return err
				}
				defer dst.Close()
				n, err := copyStore(cmd.Context(), a.store, dst, force)
				if err != nil {
					return err
				}
				if a.out.json {
					return a.out.JSON(n)
				}
				a.out.Printf("Copied %d records, %d links, %d conflicts, %d quarantine items, %d approvals, %d outbox writes, %d systems, %d tokens,\nand %d audit entries with %d checkpoints (last hash %s).\nRun `nhisync audit verify` with store: set to the copy: it reports the same root.\n",
					n.Records, n.Links, n.Conflicts, n.Quarantine, n.Approvals, n.Outbox, n.Systems, n.Tokens, n.Audit, n.Checkpoints, n.LastHash)
				return nil
			})
		},
	}
	cp.Flags().StringVar(&to, "to", "", "the target store URL: sqlite:PATH or postgres://USER@HOST:5432/DB")
	cp.Flags().BoolVar(&force, "force", false, "copy into a store that is not empty")
	cmd.AddCommand(cp)
	return cmd
}

// storeEmpty reports whether s holds nothing a copy would write.
func storeEmpty(ctx context.Context, s nhisync.Store) (bool, error) {
	if n, _, err := s.AuditHead(ctx); err != nil || n > 0 {
		return false, err
	}
	errFound := errors.New("found")
	if err := s.ScanRecordHeads(ctx, func(nhisync.RecordHead) error { return errFound }); err != nil {
		return false, ignoreFound(err, errFound)
	}
	if err := s.ScanLinkHeads(ctx, "", func(nhisync.LinkHead) error { return errFound }); err != nil {
		return false, ignoreFound(err, errFound)
	}
	if sys, err := s.Systems(ctx); err != nil || len(sys) > 0 {
		return false, err
	}
	if ts, err := s.Tokens(ctx); err != nil || len(ts) > 0 {
		return false, err
	}
	if c, err := s.LatestCheckpoint(ctx); err != nil || c != nil {
		return false, err
	}
	return true, nil
}

func ignoreFound(err, found error) error {
	if errors.Is(err, found) {
		return nil
	}
	return err
}

// copyStore copies everything src holds into dst (see store copy's help).
func copyStore(ctx context.Context, src, dst nhisync.Store, force bool) (*copyCounts, error) {
	const op = "store copy"
	srcMeta, ok := src.(metaLister)
	if !ok {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "this store cannot list its settings, so it cannot be copied"}
	}
	empty, err := storeEmpty(ctx, dst)
	if err != nil {
		return nil, err
	}
	if !empty && !force {
		return nil, &nhisync.Error{Code: nhisync.ECONFLICT, Op: op, Message: "the target store is not empty: copy into an empty database or file, or give --force to overwrite it (its audit log must then be the start of this one)"}
	}
	n := &copyCounts{}
	// The audit log first: a target whose log is not the start of ours is
	// refused before anything else is written.
	have, haveHash, err := dst.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	srcSize, srcHash, err := src.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	if have > 0 {
		var at string
		if have <= srcSize {
			err := src.ScanAudit(ctx, have, have+1, func(e *nhisync.AuditEntry, _ []byte) error { at = e.Hash; return nil })
			if err != nil {
				return nil, err
			}
		}
		if at != haveHash {
			return nil, &nhisync.Error{Code: nhisync.ECONFLICT, Op: op, Message: fmt.Sprintf(
				"the target's audit log (%d entries) is not the start of this store's (%d entries): an audit log cannot be rewritten; copy into an empty database or file", have, srcSize)}
		}
	}
	// Each entry keeps its source hash in Hash until flushCompare seals it,
	// and is appended from its source leaf (written perhaps by an older
	// encoder).
	var page []*nhisync.AuditEntry
	var leaves [][]byte
	err = src.ScanAudit(ctx, have+1, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		e.Seq, e.PrevHash = 0, ""
		page = append(page, e)
		leaves = append(leaves, leaf)
		if len(page) == copyPage {
			err := flushCompare(ctx, dst, &page, leaves)
			leaves = leaves[:0]
			return err
		}
		return nil
	})
	if err == nil {
		err = flushCompare(ctx, dst, &page, leaves)
	}
	if err != nil {
		return nil, err
	}
	if size, hash, err := dst.AuditHead(ctx); err != nil {
		return nil, err
	} else if size != srcSize || hash != srcHash {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf(
			"the copy's audit log ends at entry %d (%s), this store's at %d (%s): the copy is not usable", size, hash, srcSize, srcHash)}
	}
	n.Audit, n.LastHash = srcSize, srcHash
	if err := src.ScanCheckpoints(ctx, func(c *nhisync.Checkpoint) error {
		n.Checkpoints++
		return dst.PutCheckpoint(ctx, c)
	}); err != nil {
		return nil, err
	}

	// Records before the links that point at them.
	for after := int64(0); ; {
		recs, err := src.GoldenAfter(ctx, "", after, copyPage)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			break
		}
		if err := dst.Commit(ctx, &nhisync.Batch{Records: recs}); err != nil {
			return nil, err
		}
		n.Records += len(recs)
		after = recs[len(recs)-1].ID
	}
	var links []*nhisync.Link
	flushLinks := func() error {
		if len(links) == 0 {
			return nil
		}
		err := dst.Commit(ctx, &nhisync.Batch{Links: links})
		n.Links += len(links)
		links = links[:0]
		return err
	}
	if err := src.ScanLinks(ctx, "", nil, func(l *nhisync.Link) error {
		links = append(links, l)
		if len(links) == copyPage {
			return flushLinks()
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := flushLinks(); err != nil {
		return nil, err
	}

	b := &nhisync.Batch{}
	if b.Conflicts, err = src.Conflicts(ctx, nhisync.ItemFilter{}); err != nil {
		return nil, err
	}
	if b.Quarantine, err = src.QuarantineItems(ctx, nhisync.ItemFilter{}); err != nil {
		return nil, err
	}
	if b.Approvals, err = src.Approvals(ctx, nhisync.ItemFilter{}); err != nil {
		return nil, err
	}
	if b.Outbox, err = src.OutboxWrites(ctx, "", "", time.Time{}, 0); err != nil {
		return nil, err
	}
	if b.Systems, err = src.Systems(ctx); err != nil {
		return nil, err
	}
	if b.Meta, err = srcMeta.MetaAll(ctx); err != nil {
		return nil, err
	}
	n.Conflicts, n.Quarantine, n.Approvals, n.Outbox, n.Systems = len(b.Conflicts), len(b.Quarantine), len(b.Approvals), len(b.Outbox), len(b.Systems)
	if err := dst.Commit(ctx, b); err != nil {
		return nil, err
	}

	// The ID counter: the copy hands out IDs after every one in use here.
	next, err := src.NewIDs(ctx, 1)
	if err != nil {
		return nil, err
	}
	if dnext, err := dst.NewIDs(ctx, 1); err != nil {
		return nil, err
	} else if gap := next - dnext; gap > 0 {
		if _, err := dst.NewIDs(ctx, int(gap)); err != nil {
			return nil, err
		}
	}

	tokens, err := src.Tokens(ctx)
	if err != nil {
		return nil, err
	}
	have2, err := dst.Tokens(ctx)
	if err != nil {
		return nil, err
	}
	there := map[string]bool{}
	for _, t := range have2 {
		there[t.Name] = true
	}
	for _, t := range tokens {
		if there[t.Name] {
			if err := dst.RevokeToken(ctx, t.Name); err != nil {
				return nil, err
			}
		}
		if err := dst.CreateToken(ctx, t); err != nil {
			return nil, err
		}
		n.Tokens++
	}
	return n, nil
}

// flushCompare appends a page of entries to dst, each from its source
// leaf, and checks each one sealed to the hash it had in the source (kept
// in Hash).
func flushCompare(ctx context.Context, dst nhisync.Store, page *[]*nhisync.AuditEntry, leaves [][]byte) error {
	if len(*page) == 0 {
		return nil
	}
	want := make([]string, len(*page))
	for i, e := range *page {
		want[i], e.Hash = e.Hash, ""
	}
	b := &nhisync.Batch{Audit: *page}
	b.PrepareAuditFrom(leaves)
	if err := dst.Commit(ctx, b); err != nil {
		return err
	}
	for i, e := range *page {
		if e.Hash != want[i] {
			return &nhisync.Error{Code: nhisync.EINTERNAL, Op: "store copy", Message: fmt.Sprintf(
				"audit entry %d sealed to another hash in the copy (%s, not %s): the copy is not usable; report this as a bug", e.Seq, e.Hash, want[i])}
		}
	}
	*page = (*page)[:0]
	return nil
}
