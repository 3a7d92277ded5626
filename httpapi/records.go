package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/rule"
)

// RecordJSON is a golden record as `nhisync show -o json` prints it (SPEC
// §6): id, kind, key, links (system → native id) and fields (name →
// value, source, updated_at). A sensitive field's value is left out
// (null, with "sensitive": true).
type RecordJSON struct {
	ID     int64                `json:"id"`
	Kind   string               `json:"kind"`
	Key    string               `json:"key"`
	Links  map[string]string    `json:"links"`
	Fields map[string]FieldJSON `json:"fields"`
}

// FieldJSON is one field of RecordJSON.
type FieldJSON struct {
	Value     *nhisync.Value `json:"value"`
	Source    string         `json:"source"`
	Rule      string         `json:"rule,omitempty"`
	UpdatedAt time.Time      `json:"updated_at"`
	Sensitive bool           `json:"sensitive,omitempty"`
}

// NewRecordJSON shapes a record; kind (may be nil) tells which fields are
// sensitive.
func NewRecordJSON(r *nhisync.Record, kind *nhisync.Kind) RecordJSON {
	j := RecordJSON{ID: r.ID, Kind: r.Kind, Key: r.Key, Links: map[string]string{}, Fields: map[string]FieldJSON{}}
	for _, l := range r.Links {
		if l.Status == nhisync.LinkLive {
			j.Links[l.System] = l.ExternalID
		}
	}
	for name, g := range r.Fields {
		f := FieldJSON{Source: g.Source, Rule: g.Rule, UpdatedAt: g.At}
		if fd := fieldOf(kind, name); fd != nil && fd.Sensitive {
			f.Sensitive = true
		} else if !g.Value.IsZero() {
			v := g.Value
			f.Value = &v
		}
		j.Fields[name] = f
	}
	return j
}

func fieldOf(k *nhisync.Kind, name string) *nhisync.Field {
	if k == nil {
		return nil
	}
	return k.Field(name)
}

// pageJSON is a keyset page: next is the cursor of the following page,
// empty on the last.
type pageJSON[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// pageArgs reads limit and after.
func pageArgs(r *http.Request) (limit int, after int64, err error) {
	limit = DefaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return 0, 0, nhisync.Errorf(nhisync.EINVALID, "limit must be a number from 1 to %d, got %q", MaxLimit, v)
		}
		limit = n
	}
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, nhisync.Errorf(nhisync.EINVALID, "after must be the next of a previous page, got %q", v)
		}
		after = n
	}
	return limit, after, nil
}

// A filtered page stops reading after scanTime (checked between reads of
// at most filterPage records, about 5 µs each here) or scanBudget records,
// so a selective filter over a million records still answers promptly:
// the page then holds fewer items (maybe none) and next says where to go
// on. Keyset paging makes a short page harmless.
const (
	scanTime   = 12 * time.Millisecond
	scanBudget = 20000
)

func (s *Server) listRecords(c *call) error {
	q := c.r.URL.Query()
	limit, after, err := pageArgs(c.r)
	if err != nil {
		return err
	}
	recs, next, err := s.findRecords(c.r.Context(), recordQuery{kind: q.Get("kind"), where: q.Get("where"), limit: limit, after: after})
	if err != nil {
		return err
	}
	out := pageJSON[RecordJSON]{Items: make([]RecordJSON, 0, len(recs)), Next: next}
	for _, r := range recs {
		out.Items = append(out.Items, NewRecordJSON(r, s.opt.Config.Kinds[r.Kind]))
	}
	return s.writePage(c, out)
}

// recordQuery selects records: of a kind, matching a CEL filter and a
// search text (in the key or a non-sensitive value, any case), a keyset
// page of them.
type recordQuery struct {
	kind, where, text string
	limit             int
	after             int64
}

// findRecords returns one page of the records q selects and the cursor of
// the next page ("" on the last).
func (s *Server) findRecords(ctx context.Context, q recordQuery) ([]*nhisync.Record, string, error) {
	cfg := s.opt.Config
	where := strings.TrimSpace(q.where)
	text := strings.ToLower(strings.TrimSpace(q.text))
	if q.kind != "" && cfg.Kinds[q.kind] == nil {
		return nil, "", nhisync.Errorf(nhisync.EINVALID, "no kind %q in the config; kinds: %s", q.kind, strings.Join(cfg.KindNames, ", "))
	}
	// The filter applies to the kinds whose fields it reads (as for
	// `records --where`); records of other kinds are left out.
	var filters map[string]*rule.Filter
	if where != "" {
		var err error
		if filters, err = s.filters.get(cfg, q.kind, where); err != nil {
			return nil, "", nhisync.Errorf(nhisync.EINVALID, "where: %s", nhisync.ErrorMessage(err))
		}
	}
	selective := where != "" || text != ""
	match := func(r *nhisync.Record) (bool, error) {
		if where != "" {
			f := filters[r.Kind]
			if f == nil {
				return false, nil
			}
			ok, err := f.Match(r)
			if err != nil {
				return false, nhisync.Errorf(nhisync.EINVALID, "where on %s/%s: %v", r.Kind, r.Key, err)
			}
			if !ok {
				return false, nil
			}
		}
		return text == "" || containsText(r, cfg.Kinds[r.Kind], text), nil
	}
	if !selective {
		recs, err := s.opt.Store.RecordsAfter(ctx, q.kind, q.after, q.limit+1)
		if err != nil {
			return nil, "", err
		}
		if len(recs) > q.limit {
			return recs[:q.limit], strconv.FormatInt(recs[q.limit-1].ID, 10), nil
		}
		return recs, "", nil
	}
	// Filter over the golden fields alone (no links, no open work), then
	// load the page's records whole.
	var ids []int64
	after, scanned, next := q.after, 0, ""
	start := s.opt.Now()
	// Read a little more than the page needs first, more when the filter
	// turns out selective.
	page := max(100, 4*q.limit)
scan:
	for {
		page = min(page, filterPage)
		recs, err := s.opt.Store.GoldenAfter(ctx, q.kind, after, page)
		if err != nil {
			return nil, "", err
		}
		for _, r := range recs {
			scanned++
			ok, err := match(r)
			if err != nil {
				return nil, "", err
			}
			if ok {
				if len(ids) == q.limit {
					// One more exists: the page is full.
					next = strconv.FormatInt(after, 10)
					break scan
				}
				ids = append(ids, r.ID)
			}
			after = r.ID
		}
		if len(recs) < page {
			break
		}
		page *= 2
		if scanned >= scanBudget || s.opt.Now().Sub(start) >= scanTime {
			next = strconv.FormatInt(after, 10)
			break
		}
	}
	out, err := s.opt.Store.LoadRecords(ctx, ids)
	return out, next, err
}

// filterPage bounds how many records a filtered list reads per query.
const filterPage = 500

// containsText reports whether text (lower case) is in the record's key
// or one of its non-sensitive values.
func containsText(r *nhisync.Record, k *nhisync.Kind, text string) bool {
	if strings.Contains(strings.ToLower(r.Kind+"/"+r.Key), text) {
		return true
	}
	for name, g := range r.Fields {
		if f := fieldOf(k, name); f != nil && f.Sensitive {
			continue
		}
		if strings.Contains(strings.ToLower(g.Value.String()), text) {
			return true
		}
	}
	return false
}

func (s *Server) writePage(c *call, v any) error {
	writeJSON(c.w, http.StatusOK, v)
	return nil
}

// record loads the record named by the path.
func (s *Server) record(c *call) (*nhisync.Record, error) {
	kind, key := c.param("kind"), c.param("key")
	rec, err := s.opt.Store.RecordByKey(c.r.Context(), kind, key)
	if nhisync.ErrorCode(err) == nhisync.ENOTFOUND {
		return nil, nhisync.Errorf(nhisync.ENOTFOUND, "no %s record with that key", kind)
	}
	return rec, err
}

func (s *Server) getRecord(c *call) error {
	rec, err := s.record(c)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, NewRecordJSON(rec, s.opt.Config.Kinds[rec.Kind]))
	return nil
}

func (s *Server) recordHistory(c *call) error {
	rec, err := s.record(c)
	if err != nil {
		return err
	}
	entries, err := s.opt.Store.AuditByRecord(c.r.Context(), rec.ID)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []*nhisync.AuditEntry{}
	}
	writeJSON(c.w, http.StatusOK, entries)
	return nil
}

func (s *Server) explainField(c *call) error {
	x, err := s.opt.Engine.Explain(c.r.Context(), c.param("kind"), c.param("key"), c.param("field"))
	if err != nil {
		if nhisync.ErrorCode(err) == nhisync.ENOTFOUND {
			return nhisync.Errorf(nhisync.ENOTFOUND, "no %s record with that key", c.param("kind"))
		}
		return err
	}
	if s.sensitive(c.param("kind"), c.param("field")) {
		w, err := withheld(x)
		if err != nil {
			return err
		}
		writeJSON(c.w, http.StatusOK, w)
		return nil
	}
	writeJSON(c.w, http.StatusOK, x)
	return nil
}

// filterCache keeps compiled where filters: compiling CEL costs more than
// filtering a page, and clients repeat their filters while paging.
type filterCache struct {
	mu sync.Mutex
	m  map[[2]string]map[string]*rule.Filter
}

// filterCacheSize bounds the cache; when full it starts over.
const filterCacheSize = 256

// get returns the filters of kind ("" for every kind) by kind name, as
// rule.CompileFilters compiles them.
func (c *filterCache) get(cfg *nhisync.Config, kind, where string) (map[string]*rule.Filter, error) {
	key := [2]string{kind, where}
	c.mu.Lock()
	f := c.m[key]
	c.mu.Unlock()
	if f != nil {
		return f, nil
	}
	f, err := rule.CompileFilters(cfg, kind, where)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= filterCacheSize {
		c.m = map[[2]string]map[string]*rule.Filter{}
	}
	c.m[key] = f
	c.mu.Unlock()
	return f, nil
}
