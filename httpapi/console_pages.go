package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// hidden stands in for a sensitive field's value on a page.
var hidden = nhisync.Str("(sensitive)")

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// showValue renders a value for a page ("∅" for none).
func showValue(v nhisync.Value) string {
	if v.IsZero() {
		return "∅"
	}
	return v.String()
}

func showTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// inventoryData is the inventory page.
type inventoryData struct {
	Kinds             []string
	Kind, Where, Text string
	Columns           []string
	Rows              []inventoryRow
	Next              string
	Query             string // the query string without after, for the next link
}

type inventoryRow struct {
	Kind, Key string
	Systems   int
	Values    []string
}

func (c *console) inventory(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	q := r.URL.Query()
	d := &inventoryData{Kinds: c.s.opt.Config.KindNames, Kind: q.Get("kind"), Where: q.Get("where"), Text: q.Get("q")}
	var after int64
	if a := q.Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 0 {
			return "", nhisync.Errorf(nhisync.EINVALID, "after must be a page cursor")
		}
		after = n
	}
	v.Title, v.Nav, v.Data = "Inventory", "records", d
	recs, next, err := c.s.findRecords(r.Context(), recordQuery{kind: d.Kind, where: d.Where, text: d.Text, limit: 50, after: after})
	if err != nil {
		if nhisync.ErrorCode(err) != nhisync.EINVALID {
			return "", err
		}
		// A bad filter is shown above the empty list, not as a dead end.
		v.Error = nhisync.ErrorMessage(err)
		return "inventory", nil
	}
	d.Next = next
	d.Query = url.Values{"kind": {d.Kind}, "where": {d.Where}, "q": {d.Text}}.Encode()
	// Columns: the first non-match, non-sensitive fields of the kind shown
	// (or of the first kind).
	kname := d.Kind
	if kname == "" && len(d.Kinds) > 0 {
		kname = d.Kinds[0]
	}
	if k := c.s.opt.Config.Kinds[kname]; k != nil {
		for _, f := range k.FieldNames {
			if !k.IsMatch(f) && !k.Fields[f].Sensitive && len(d.Columns) < 4 {
				d.Columns = append(d.Columns, f)
			}
		}
	}
	for _, rec := range recs {
		row := inventoryRow{Kind: rec.Kind, Key: rec.Key}
		for _, l := range rec.Links {
			if l.Status == nhisync.LinkLive {
				row.Systems++
			}
		}
		for _, col := range d.Columns {
			row.Values = append(row.Values, showValue(rec.Value(col)))
		}
		d.Rows = append(d.Rows, row)
	}
	return "inventory", nil
}

// recordData is the record page.
type recordData struct {
	Record  *nhisync.Record
	Name    string
	Systems []string
	Fields  []fieldRow
	Links   []*nhisync.Link
	History []*nhisync.AuditEntry
}

// fieldRow is one field: its golden value with provenance, every system's
// assertion and state (explain), and why the rules chose it.
type fieldRow struct {
	Name       string
	Value      string
	Source     string
	Rule       string
	Since      string
	Sensitive  bool
	Assertions []assertionCell
	Recomputed string
	Open       string
}

type assertionCell struct {
	Value, State string
}

func (c *console) recordPage(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	ctx := r.Context()
	kind, key, err := c.s.recordFromPath(r, "/records/")
	if err != nil {
		return "", err
	}
	rec, err := c.s.opt.Store.RecordByKey(ctx, kind, key)
	if err != nil {
		if nhisync.ErrorCode(err) == nhisync.ENOTFOUND {
			return "", nhisync.Errorf(nhisync.ENOTFOUND, "no %s record with that key", kind)
		}
		return "", err
	}
	k := c.s.opt.Config.Kinds[kind]
	d := &recordData{Record: rec, Name: rec.Kind + "/" + rec.Key, Links: rec.Links}
	for _, name := range c.s.opt.Config.SystemNames {
		if c.s.opt.Config.Systems[name].Kind == kind {
			d.Systems = append(d.Systems, name)
		}
	}
	for _, fname := range k.FieldNames {
		f := k.Fields[fname]
		row := fieldRow{Name: fname, Sensitive: f.Sensitive}
		if g := rec.Fields[fname]; g != nil {
			row.Value, row.Source, row.Rule, row.Since = showValue(g.Value), g.Source, g.Rule, showTime(g.At)
		} else {
			row.Value = "∅"
		}
		x, err := c.s.opt.Engine.Explain(ctx, kind, key, fname)
		if err != nil {
			return "", err
		}
		by := map[string]engine.Assertion{}
		for _, as := range x.Assertions {
			by[as.System] = as
		}
		for _, sys := range d.Systems {
			as, ok := by[sys]
			switch {
			case !ok:
				row.Assertions = append(row.Assertions, assertionCell{Value: "", State: "—"})
			case f.Sensitive:
				row.Assertions = append(row.Assertions, assertionCell{Value: "(sensitive)", State: as.State})
			default:
				row.Assertions = append(row.Assertions, assertionCell{Value: showValue(as.Value), State: as.State})
			}
		}
		row.Recomputed = x.Recomputed.Rule
		if x.Conflict != nil && x.Conflict.Status == nhisync.StatusOpen {
			row.Open = fmt.Sprintf("conflict %d open", x.Conflict.ID)
		}
		if f.Sensitive {
			row.Value = "(sensitive)"
		}
		d.Fields = append(d.Fields, row)
	}
	d.History, err = c.s.opt.Store.AuditByRecord(ctx, rec.ID)
	if err != nil {
		return "", err
	}
	d.History = nhisync.ExpandAll(d.History) // one row per first value too
	for _, e := range d.History {
		if f := k.Field(e.Field); f != nil && f.Sensitive {
			e.Old, e.New = nhisync.Value{}, nhisync.Value{}
		}
	}
	v.Title, v.Nav, v.Data = d.Name, "records", d
	return "record", nil
}

// recordFromPath reads KIND/KEY after prefix in the escaped path.
func (s *Server) recordFromPath(r *http.Request, prefix string) (kind, matchKey string, err error) {
	name := strings.TrimPrefix(r.URL.EscapedPath(), prefix)
	kindEsc, _, _ := strings.Cut(name, "/")
	kind, err = url.PathUnescape(kindEsc)
	if err != nil || s.opt.Config.Kinds[kind] == nil {
		return "", "", nhisync.Errorf(nhisync.ENOTFOUND, "no kind %q in the config", kindEsc)
	}
	return nhisync.ParseRecordName(name, func(k string) (int, bool) {
		if kd := s.opt.Config.Kinds[k]; kd != nil {
			return len(kd.Match), true
		}
		return 0, false
	})
}

// queueData is a queue page.
type queueData struct {
	Status   string
	Statuses []string
	Items    any
}

func queueStatus(r *http.Request, statuses []string, def string) string {
	st := r.URL.Query().Get("status")
	for _, s := range statuses {
		if s == st {
			return st
		}
	}
	if st == "all" {
		return ""
	}
	return def
}

func (c *console) conflictsPage(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	st := queueStatus(r, conflictQueue.statuses, conflictQueue.def)
	items, err := c.s.opt.Store.Conflicts(r.Context(), nhisync.ItemFilter{Status: st})
	if err != nil {
		return "", err
	}
	for _, it := range items {
		if c.s.sensitive(it.Kind, it.Field) {
			it.Golden, it.Resolution = hidden, hidden
			for i := range it.Proposals {
				it.Proposals[i].Value = hidden
			}
		}
	}
	v.Title, v.Nav, v.Data = "Conflicts", "conflicts", &queueData{Status: st, Statuses: conflictQueue.statuses, Items: items}
	return "conflicts", nil
}

func (c *console) quarantinePage(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	st := queueStatus(r, quarantineQueue.statuses, quarantineQueue.def)
	items, err := c.s.opt.Store.QuarantineItems(r.Context(), nhisync.ItemFilter{Status: st})
	if err != nil {
		return "", err
	}
	for _, it := range items {
		if c.s.sensitive(it.Kind, it.Field) {
			it.Value = hidden
		}
	}
	v.Title, v.Nav, v.Data = "Quarantine", "quarantine", &queueData{Status: st, Statuses: quarantineQueue.statuses, Items: items}
	return "quarantine", nil
}

func (c *console) approvalsPage(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	st := queueStatus(r, approvalQueue.statuses, approvalQueue.def)
	items, err := c.s.opt.Store.Approvals(r.Context(), nhisync.ItemFilter{Status: st})
	if err != nil {
		return "", err
	}
	for _, it := range items {
		if c.s.sensitive(it.Kind, it.Field) {
			it.Old, it.Value = hidden, hidden
		}
	}
	v.Title, v.Nav, v.Data = "Approvals", "approvals", &queueData{Status: st, Statuses: approvalQueue.statuses, Items: items}
	return "approvals", nil
}

// decided redirects back to a queue with what was done (POST, redirect,
// GET: a reload never repeats the decision).
func decided(w http.ResponseWriter, r *http.Request, queue, msg string) (string, error) {
	http.Redirect(w, r, "/"+queue+"?done="+url.QueryEscape(msg), http.StatusSeeOther)
	return "", nil
}

func formID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, nhisync.Errorf(nhisync.EINVALID, "the id must be a positive number")
	}
	return id, nil
}

// resolve settles a conflict from the console: the same engine call as
// `conflicts resolve` and the API, as the signed-in person.
func (c *console) resolve(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	id, err := formID(r)
	if err != nil {
		return "", err
	}
	pick, value := r.PostForm.Get("pick"), r.PostForm.Get("value")
	if (pick == "") == (value == "") {
		return "", nhisync.Errorf(nhisync.EINVALID, "pick a system's proposal or give a value, not both")
	}
	var out *nhisync.Conflict
	err = c.s.act(r.Context(), v.Who.name, true, func(ctx context.Context) error {
		out, err = c.s.opt.Engine.ResolveConflict(ctx, id, pick, value, v.Who.name)
		return err
	})
	if err != nil {
		return "", err
	}
	return decided(w, r, "conflicts", fmt.Sprintf("Conflict %d resolved: %s/%s %s = %s", out.ID, out.Kind, out.Record, out.Field, showValue(out.Resolution)))
}

func (c *console) dismiss(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	id, err := formID(r)
	if err != nil {
		return "", err
	}
	err = c.s.act(r.Context(), v.Who.name, true, func(ctx context.Context) error {
		_, err := c.s.opt.Engine.DismissQuarantine(ctx, id, v.Who.name)
		return err
	})
	if err != nil {
		return "", err
	}
	return decided(w, r, "quarantine", fmt.Sprintf("Quarantine item %d dismissed", id))
}

func (c *console) approve(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	return c.decide(w, r, v, true)
}

func (c *console) reject(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	return c.decide(w, r, v, false)
}

func (c *console) decide(w http.ResponseWriter, r *http.Request, v *view, grant bool) (string, error) {
	id, err := formID(r)
	if err != nil {
		return "", err
	}
	var out *nhisync.Approval
	err = c.s.act(r.Context(), v.Who.name, grant, func(ctx context.Context) error {
		if grant {
			out, err = c.s.opt.Engine.Approve(ctx, id, v.Who.name)
		} else {
			out, err = c.s.opt.Engine.Reject(ctx, id, v.Who.name)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return decided(w, r, "approvals", fmt.Sprintf("Approval %d %s", out.ID, out.Status))
}

func (c *console) systemsPage(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	systems, err := c.s.Systems(r.Context())
	if err != nil {
		return "", err
	}
	v.Title, v.Nav, v.Data = "Systems", "systems", systems
	return "systems", nil
}

// reportData is the reports page.
type reportData struct {
	Names  []string
	Name   string
	Result any
}

func (c *console) reportsPage(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	d := &reportData{Names: reportNames(), Name: r.PathValue("name")}
	v.Title, v.Nav, v.Data = "Reports", "reports", d
	if d.Name != "" {
		res, err := c.s.report(r.Context(), d.Name)
		if err != nil {
			return "", err
		}
		d.Result = res
		v.Title = "Report: " + d.Name
	}
	return "reports", nil
}

// auditData is the audit page.
type auditData struct {
	Latest      *nhisync.Checkpoint
	Checkpoints []*nhisync.Checkpoint
	Size        int64
}

func (c *console) auditPage(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	d := &auditData{}
	var err error
	if d.Size, _, err = c.s.opt.Store.AuditHead(r.Context()); err != nil {
		return "", err
	}
	// Only the checkpoints the store hands out: up to its latest, which
	// is not one a bulk window signed before the window was synced to
	// disk (a power loss could take that one back).
	latest, err := c.s.opt.Store.LatestCheckpoint(r.Context())
	if err != nil {
		return "", err
	}
	err = c.s.opt.Store.ScanCheckpoints(r.Context(), func(cp *nhisync.Checkpoint) error {
		if latest != nil && cp.Size <= latest.Size {
			d.Checkpoints = append(d.Checkpoints, cp)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	// Newest first; the page shows the latest 50.
	for i, j := 0, len(d.Checkpoints)-1; i < j; i, j = i+1, j-1 {
		d.Checkpoints[i], d.Checkpoints[j] = d.Checkpoints[j], d.Checkpoints[i]
	}
	if len(d.Checkpoints) > 50 {
		d.Checkpoints = d.Checkpoints[:50]
	}
	if len(d.Checkpoints) > 0 {
		d.Latest = d.Checkpoints[0]
	}
	v.Title, v.Nav, v.Data = "Audit log", "audit", d
	return "audit", nil
}
