package quickstart

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver for idp.db

	"github.com/nhisync/nhisync"
)

// idpRow is a row of the identity provider's service_accounts table.
type idpRow struct {
	ID, Name, Platform, Status string
	Scopes                     []string
	RotatedAt, UpdatedAt       time.Time
	CreatedBy                  string
}

// cmdbRow is a row of the CMDB's CSV export.
type cmdbRow struct {
	SysID, Name, Platform, Type, Owner, App, Status string
	Tags                                            []string
	Env, CostCenter, Notes                          string
}

// cmdbHeader is the CSV header; nhi_type, environment, cost_center and
// notes are not mapped, so they show that nhisync keeps what it does not own.
var cmdbHeader = []string{"sys_id", "name", "platform", "nhi_type", "owned_by", "app", "status", "tags", "environment", "cost_center", "notes"}

func (r *cmdbRow) cells() []string {
	return []string{r.SysID, r.Name, r.Platform, r.Type, r.Owner, r.App, r.Status, strings.Join(r.Tags, ","), r.Env, r.CostCenter, r.Notes}
}

// catalogEntry is one mapping of the data catalog's YAML list: keys name,
// platform, steward, tags, policy (left out when empty) and description.
type catalogEntry struct {
	Name, Platform, Steward string
	Tags                    []string
	Policy, Description     string
	// UsedBy lists the applications the catalog knows use the identity
	// (left out when empty).
	UsedBy []string
}

// policyEntry is one object of the policy engine's JSON array.
type policyEntry struct {
	ID       string   `json:"id"`
	Account  string   `json:"account"`
	Platform string   `json:"platform"`
	Grants   []string `json:"grants"`
	State    string   `json:"state"`
	Ticket   string   `json:"ticket"`
}

// writeCMDB writes the CMDB export in account order.
func writeCMDB(w io.Writer, accounts []*account) (int, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(cmdbHeader); err != nil {
		return 0, err
	}
	n := 0
	for _, a := range accounts {
		if a.cmdb == nil {
			continue
		}
		if err := cw.Write(a.cmdb.cells()); err != nil {
			return n, err
		}
		n++
	}
	cw.Flush()
	return n, cw.Error()
}

// writeCatalog writes the catalog as a YAML list, sorted by platform and
// name as a catalog export would be. The shape is fixed and small, so it
// is emitted directly: a YAML library costs kilobytes of garbage per entry,
// which a large estate feels.
func writeCatalog(w io.Writer, accounts []*account) (int, error) {
	type sortable struct {
		key   string
		entry *catalogEntry
	}
	var entries []sortable
	for _, a := range accounts {
		if e := a.catalog; e != nil {
			entries = append(entries, sortable{e.Platform + "/" + strings.ToLower(strings.TrimSpace(e.Name)), e})
		}
	}
	slices.SortStableFunc(entries, func(x, y sortable) int { return cmp.Compare(x.key, y.key) })
	var b []byte
	for _, se := range entries {
		e := se.entry
		b = b[:0]
		b = appendYAMLField(b, "- ", "name", e.Name)
		b = appendYAMLField(b, "  ", "platform", e.Platform)
		b = appendYAMLField(b, "  ", "steward", e.Steward)
		if len(e.Tags) == 0 {
			b = append(b, "  tags: []\n"...)
		} else {
			b = append(b, "  tags:\n"...)
			for _, t := range e.Tags {
				b = appendYAMLScalar(append(b, "    - "...), t)
				b = append(b, '\n')
			}
		}
		if e.Policy != "" {
			b = appendYAMLField(b, "  ", "policy", e.Policy)
		}
		if len(e.UsedBy) > 0 {
			b = append(b, "  used_by:\n"...)
			for _, u := range e.UsedBy {
				b = appendYAMLScalar(append(b, "    - "...), u)
				b = append(b, '\n')
			}
		}
		b = appendYAMLField(b, "  ", "description", e.Description)
		if _, err := w.Write(b); err != nil {
			return 0, err
		}
	}
	return len(entries), nil
}

func appendYAMLField(b []byte, indent, key, value string) []byte {
	b = append(b, indent...)
	b = append(b, key...)
	b = append(b, ": "...)
	return append(appendYAMLScalar(b, value), '\n')
}

// plainYAML matches strings that read back as the same string when
// written unquoted: a letter first (no indicator, number or date), then
// no ": ", " #", flow indicators or quotes.
var plainYAML = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.@/()+-]*( [A-Za-z0-9_.@/()+-]+)*$`)

// appendYAMLScalar appends s as a YAML scalar: plain when that is safe,
// else double-quoted (a JSON string is a valid YAML double-quoted scalar).
func appendYAMLScalar(b []byte, s string) []byte {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null":
	default:
		if plainYAML.MatchString(s) {
			return append(b, s...)
		}
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// writePolicy writes the policy engine's JSON array in id order.
func writePolicy(w io.Writer, accounts []*account) (int, error) {
	n := 0
	if _, err := io.WriteString(w, "["); err != nil {
		return 0, err
	}
	for _, a := range accounts {
		if a.policy == nil {
			continue
		}
		b, err := json.MarshalIndent(a.policy, "  ", "  ")
		if err != nil {
			return n, err
		}
		sep := ",\n  "
		if n == 0 {
			sep = "\n  "
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return n, err
		}
		if _, err := w.Write(b); err != nil {
			return n, err
		}
		n++
	}
	_, err := io.WriteString(w, "\n]\n")
	return n, err
}

// idpSchema is the identity provider's table.
const idpSchema = `CREATE TABLE service_accounts (
	id         TEXT PRIMARY KEY,
	name       TEXT,
	platform   TEXT,
	status     TEXT,
	scopes     TEXT,
	rotated_at TEXT,
	updated_at TEXT,
	created_by TEXT
)`

// idpIndex serves the sql connector's updated_at cursor. It is built after
// the rows are in, which is faster than keeping it up to date row by row.
const idpIndex = `CREATE INDEX service_accounts_updated_at ON service_accounts (updated_at)`

// idpLoad speeds up filling a new database file: nothing in it is worth
// a journal until it is complete, and a failed Generate removes it. Both
// settings last only as long as the connection.
const idpLoad = `PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536`

// writeIDP creates the identity provider's SQLite database at path.
func writeIDP(ctx context.Context, path string, accounts []*account) (n int, err error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	// One connection, so the pragmas hold for every statement.
	db.SetMaxOpenConns(1)
	for _, q := range []string{idpLoad, idpSchema} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("create table: %w", err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO service_accounts
		(id, name, platform, status, scopes, rotated_at, updated_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	for _, a := range accounts {
		r := a.idp
		if r == nil {
			continue
		}
		if _, err := stmt.ExecContext(ctx, r.ID, r.Name, r.Platform, r.Status,
			strings.Join(r.Scopes, ","), formatTime(r.RotatedAt), formatTime(r.UpdatedAt), r.CreatedBy); err != nil {
			return n, fmt.Errorf("insert %s: %w", r.ID, err)
		}
		n++
	}
	if _, err := tx.ExecContext(ctx, idpIndex); err != nil {
		return n, fmt.Errorf("create index: %w", err)
	}
	return n, tx.Commit()
}

// formatTime formats t as RFC 3339 in UTC, the form every system here uses.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// appsHeader is the application register's CSV header.
var appsHeader = []string{"name", "team", "status", "cost_center"}

// writeApps writes the application register: every application, in the
// vocabulary's order, the retired one with status decommissioned.
func writeApps(w io.Writer, retired string) (int, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(appsHeader); err != nil {
		return 0, err
	}
	for _, a := range applications {
		status := "active"
		if a.name == retired {
			status = nhisync.LifecycleDecommissioned
		}
		if err := cw.Write([]string{a.name, a.team, status, a.costCenter}); err != nil {
			return 0, err
		}
	}
	cw.Flush()
	return len(applications), cw.Error()
}
