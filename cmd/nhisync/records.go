package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/rule"
)

// recordJSON is the JSON shape of a golden record (SPEC §6).
type recordJSON struct {
	ID     int64                `json:"id"`
	Kind   string               `json:"kind"`
	Key    string               `json:"key"`
	Links  map[string]string    `json:"links"`
	Fields map[string]fieldJSON `json:"fields"`
}

type fieldJSON struct {
	Value     nhisync.Value `json:"value"`
	Source    string        `json:"source"`
	Rule      string        `json:"rule,omitempty"`
	UpdatedAt time.Time     `json:"updated_at"`
}

func toRecordJSON(r *nhisync.Record) recordJSON {
	j := recordJSON{ID: r.ID, Kind: r.Kind, Key: r.Key, Links: map[string]string{}, Fields: map[string]fieldJSON{}}
	for _, l := range r.Links {
		if l.Status == nhisync.LinkLive {
			j.Links[l.System] = l.ExternalID
		}
	}
	for name, g := range r.Fields {
		j.Fields[name] = fieldJSON{Value: g.Value, Source: g.Source, Rule: g.Rule, UpdatedAt: g.At}
	}
	return j
}

func recordsCmd(g *globals) *cobra.Command {
	var kind, where string
	var limit int
	cmd := &cobra.Command{
		Use:   "records",
		Short: "List golden records",
		Long: `List golden records, optionally of one kind and filtered by a CEL expression
over their fields, e.g.  --where 'owner == "" && lifecycle == "active"'
or  --where '"pii" in classification'.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usagef("--limit %d: give 0 (every record) or more", limit)
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				if kind != "" && a.cfg.Kinds[kind] == nil {
					return nhisync.Errorf(nhisync.EINVALID, "no kind %q in the config; kinds: %s", kind, strings.Join(a.cfg.KindNames, ", "))
				}
				// Like report --where: the filter applies to the kinds whose
				// fields it reads, and must compile for one.
				filters := map[string]*rule.Filter{}
				if where != "" {
					var err error
					if filters, err = rule.CompileFilters(a.cfg, kind, where); err != nil {
						return err
					}
				}
				var recs []*nhisync.Record
				err := a.store.ScanRecords(cmd.Context(), kind, func(r *nhisync.Record) error {
					if f := filters[r.Kind]; f != nil {
						ok, err := f.Match(r)
						if err != nil {
							return nhisync.Errorf(nhisync.EINVALID, "--where on %s/%s: %v", r.Kind, r.Key, err)
						}
						if !ok {
							return nil
						}
					} else if where != "" {
						return nil
					}
					recs = append(recs, r)
					if limit > 0 && len(recs) >= limit {
						return errStopScan
					}
					return nil
				})
				if err != nil && err != errStopScan {
					return err
				}
				if a.out.json {
					list := make([]recordJSON, 0, len(recs))
					for _, r := range recs {
						a.engine.RedactRecord(r) // `show --reveal` prints one in clear
						list = append(list, toRecordJSON(r))
					}
					return a.out.JSON(list)
				}
				printRecords(a, recs)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "only records of this kind")
	cmd.Flags().StringVar(&where, "where", "", "CEL filter over the record's fields (and kind, key)")
	cmd.Flags().IntVar(&limit, "limit", 0, "print at most this many records (0: all)")
	return cmd
}

// errStopScan ends a scan early.
var errStopScan = fmt.Errorf("stop")

func printRecords(a *app, recs []*nhisync.Record) {
	if len(recs) == 0 {
		a.out.Printf("No records.\n")
		return
	}
	// Columns: the record, then the first non-match fields of its kind.
	byKind := map[string][]*nhisync.Record{}
	for _, r := range recs {
		byKind[r.Kind] = append(byKind[r.Kind], r)
	}
	for _, k := range a.cfg.KindNames {
		rs := byKind[k]
		if len(rs) == 0 {
			continue
		}
		kind := a.cfg.Kinds[k]
		var cols []string
		for _, f := range kind.FieldNames {
			if !kind.IsMatch(f) && len(cols) < 5 && !kind.Fields[f].Sensitive {
				cols = append(cols, f)
			}
		}
		header := append([]string{"record", "systems"}, cols...)
		var rows [][]string
		for _, r := range rs {
			row := []string{r.Kind + "/" + r.Key, strconv.Itoa(liveLinks(r))}
			for _, c := range cols {
				row = append(row, r.Value(c).String())
			}
			rows = append(rows, row)
		}
		a.out.Table(header, rows)
	}
	a.out.Printf("\n%d records\n", len(recs))
}

func liveLinks(r *nhisync.Record) int {
	n := 0
	for _, l := range r.Links {
		if l.Status == nhisync.LinkLive {
			n++
		}
	}
	return n
}

// parseRecordName splits KIND/KEY by the config's kinds.
func (a *app) parseRecordName(name string) (kind, matchKey string, err error) {
	return nhisync.ParseRecordName(name, func(k string) (int, bool) {
		if kd := a.cfg.Kinds[k]; kd != nil {
			return len(kd.Match), true
		}
		return 0, false
	})
}

// findRecord resolves KIND/KEY to a stored record.
func (a *app) findRecord(ctx context.Context, name string) (*nhisync.Record, error) {
	kind, key, err := a.parseRecordName(name)
	if err != nil {
		return nil, err
	}
	rec, err := a.store.RecordByKey(ctx, kind, key)
	if err != nil {
		if nhisync.ErrorCode(err) == nhisync.ENOTFOUND {
			return nil, nhisync.Errorf(nhisync.ENOTFOUND, "no record %s; list them with `nhisync records --kind %s`", name, kind)
		}
		return nil, err
	}
	return rec, nil
}

func showCmd(g *globals) *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:   "show KIND/KEY",
		Short: "Show a golden record with per-field provenance and links",
		Args:  exactArgs(1, "KIND/KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.with(cmd.Context(), false, func(a *app) error {
				rec, err := a.findRecord(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if reveal {
					if err := a.revealed(cmd.Context(), "show", rec.Kind, rec.ID, rec.Key, ""); err != nil {
						return err
					}
				} else {
					a.engine.RedactRecord(rec)
				}
				if a.out.json {
					return a.out.JSON(toRecordJSON(rec))
				}
				o := a.out
				o.Printf("%s  (id %d)\n\n", o.bold(rec.Kind+"/"+rec.Key), rec.ID)
				kind := a.cfg.Kinds[rec.Kind]
				var rows [][]string
				for _, f := range kind.FieldNames {
					gd := rec.Fields[f]
					if gd == nil {
						rows = append(rows, []string{f, "", "", "", ""})
						continue
					}
					val := gd.Value.String()
					rows = append(rows, []string{f, val, gd.Source, gd.Rule, gd.At.Format(time.RFC3339)})
				}
				// One record: every value in full (records lists clip them).
				o.FullTable([]string{"field", "value", "source", "rule", "since"}, rows)
				o.Printf("\n")
				rows = nil
				for _, l := range rec.Links {
					rows = append(rows, []string{l.System, l.ExternalID, string(l.Status), l.SeenAt.Format(time.RFC3339)})
				}
				o.Table([]string{"system", "id", "link", "last seen"}, rows)
				open := len(rec.Conflicts) + len(rec.Quarantine)
				for _, ap := range rec.Approvals {
					if ap.Status == nhisync.StatusPending {
						open++
					}
				}
				if open > 0 || len(rec.Outbox) > 0 {
					o.Printf("\n%d open items, %d queued writes: see `nhisync explain %s/%s FIELD`\n", open, len(rec.Outbox), rec.Kind, rec.Key)
				}
				return nil
			})
		},
	}
	revealFlag(cmd, &reveal)
	return cmd
}

func historyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "history KIND/KEY",
		Short: "Every change of a record, from the audit log",
		Args:  exactArgs(1, "KIND/KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.with(cmd.Context(), false, func(a *app) error {
				rec, err := a.findRecord(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				entries, err := a.store.AuditByRecord(cmd.Context(), rec.ID)
				if err != nil {
					return err
				}
				if a.out.json {
					if entries == nil {
						entries = []*nhisync.AuditEntry{}
					}
					return a.out.JSON(entries)
				}
				var rows [][]string
				// A record.created entry's first values read as one row each.
				for _, e := range nhisync.ExpandAll(entries) {
					change := ""
					if !e.Old.IsZero() || !e.New.IsZero() {
						change = quoteValue(e.Old) + " → " + quoteValue(e.New)
					}
					rows = append(rows, []string{strconv.FormatInt(e.Seq, 10), e.Time.Format(time.RFC3339), e.Actor, e.Action, e.Field, e.System, change, e.Reason})
				}
				a.out.Table([]string{"seq", "time", "actor", "action", "field", "system", "change", "reason"}, rows)
				return nil
			})
		},
	}
}

func explainCmd(g *globals) *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:   "explain KIND/KEY FIELD",
		Short: "Every system's assertion for a field, the winner and the rule that chose it",
		Args:  exactArgs(2, "KIND/KEY FIELD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.with(cmd.Context(), false, func(a *app) error {
				kind, key, err := a.parseRecordName(args[0])
				if err != nil {
					return err
				}
				x, err := a.engine.Explain(cmd.Context(), kind, key, args[1])
				if nhisync.ErrorCode(err) == nhisync.ENOTFOUND {
					return nhisync.Errorf(nhisync.ENOTFOUND, "no record %s; list them with `nhisync records --kind %s`", args[0], kind)
				}
				if err != nil {
					return err
				}
				if reveal {
					if err := a.revealed(cmd.Context(), "explain", x.Kind, 0, x.Record, x.Field); err != nil {
						return err
					}
				} else {
					a.engine.RedactExplanation(x)
				}
				if a.out.json {
					return a.out.JSON(x)
				}
				o := a.out
				o.Printf("%s %s  (%s, resolve: %s", o.bold(x.Kind+"/"+x.Record), o.bold(x.Field), x.Type, x.Resolve)
				if len(x.Authority) > 0 {
					o.Printf(", authority: %s", strings.Join(x.Authority, " > "))
				}
				o.Printf(")\n\n")
				if x.Golden != nil {
					o.Printf("golden   %s\n         set by %s under %q at %s\n\n", quoteValue(x.Golden.Value), x.Golden.Source, x.Golden.Rule, x.Golden.At.Format(time.RFC3339))
				} else {
					o.Printf("golden   ∅ (no system has set it)\n\n")
				}
				var rows [][]string
				for _, as := range x.Assertions {
					allowed := "yes"
					if !as.Allowed {
						allowed = "no"
					} else if len(x.Authority) > 0 {
						allowed = fmt.Sprintf("rank %d", as.Rank)
					}
					rows = append(rows, []string{as.System, quoteValue(as.Value), as.State, allowed, as.Since.Format(time.RFC3339)})
				}
				o.StyledTable([]string{"system", "asserts", "state", "may set", "since"}, rows, func(r, c int) string {
					if c != 2 {
						return ""
					}
					switch rows[r][2] {
					case "agrees":
						return ansiGreen
					case "quarantined", "conflict":
						return ansiRed
					}
					return ansiYellow
				})
				if len(x.History) > 0 {
					o.Printf("\nhistory (latest %d):\n", len(x.History))
					for _, h := range x.History {
						line := fmt.Sprintf("  %s  %-18s %-8s", h.Time.Format(time.RFC3339), h.Action, h.System)
						if !h.New.IsZero() || !h.Old.IsZero() {
							line += " " + quoteValue(h.New)
						}
						if h.Reason != "" {
							line += "  " + o.dim("("+h.Reason+")")
						}
						o.Printf("%s\n", line)
					}
				}
				o.Printf("\nrules now choose %s\n", x.Recomputed.String())
				if x.Conflict != nil {
					o.Printf("conflict %d is open: resolve with `nhisync conflicts resolve %d --pick SYSTEM`\n", x.Conflict.ID, x.Conflict.ID)
				}
				for _, q := range x.Quarantine {
					if q.Status == nhisync.StatusOpen {
						o.Printf("quarantine %d: %s from %s (%s)\n", q.ID, quoteValue(q.Value), q.System, q.Reason)
					}
				}
				for _, ap := range x.Approvals {
					if ap.Status == nhisync.StatusPending {
						o.Printf("approval %d pending: write %s to %s\n", ap.ID, quoteValue(ap.Value), ap.System)
					}
				}
				return nil
			})
		},
	}
	revealFlag(cmd, &reveal)
	return cmd
}
