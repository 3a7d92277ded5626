package httpapi

import (
	"net/http"
	"strconv"
	"strings"
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

// scanBudget bounds how many records one filtered page reads, so a
// selective filter over a million records still answers promptly: the
// page then holds fewer items (maybe none) and next says where to go on.
const scanBudget = 20000

func (s *Server) listRecords(c *call) error {
	ctx := c.r.Context()
	q := c.r.URL.Query()
	kind, where := q.Get("kind"), strings.TrimSpace(q.Get("where"))
	cfg := s.opt.Config
	if kind != "" && cfg.Kinds[kind] == nil {
		return nhisync.Errorf(nhisync.EINVALID, "no kind %q in the config; kinds: %s", kind, strings.Join(cfg.KindNames, ", "))
	}
	limit, after, err := pageArgs(c.r)
	if err != nil {
		return err
	}
	filters := map[string]*rule.Filter{}
	if where != "" {
		for _, k := range cfg.KindNames {
			if kind != "" && k != kind {
				continue
			}
			f, err := rule.CompileFilter(cfg.Kinds[k], where)
			if err != nil {
				return nhisync.Errorf(nhisync.EINVALID, "where: %s", nhisync.ErrorMessage(err))
			}
			filters[k] = f
		}
	}
	out := pageJSON[RecordJSON]{Items: []RecordJSON{}}
	scanned := 0
	for {
		want := limit + 1 - len(out.Items)
		if where != "" {
			want = max(want, 200)
		}
		recs, err := s.opt.Store.RecordsAfter(ctx, kind, after, want)
		if err != nil {
			return err
		}
		for _, r := range recs {
			scanned++
			if f := filters[r.Kind]; where != "" {
				if f == nil {
					continue
				}
				ok, err := f.Match(r)
				if err != nil {
					return nhisync.Errorf(nhisync.EINVALID, "where on %s/%s: %v", r.Kind, r.Key, err)
				}
				if !ok {
					after = r.ID
					continue
				}
			}
			if len(out.Items) == limit {
				// One more exists: the page is full.
				out.Next = strconv.FormatInt(after, 10)
				return s.writePage(c, out)
			}
			out.Items = append(out.Items, NewRecordJSON(r, cfg.Kinds[r.Kind]))
			after = r.ID
		}
		if len(recs) < want {
			return s.writePage(c, out)
		}
		if scanned >= scanBudget {
			out.Next = strconv.FormatInt(after, 10)
			return s.writePage(c, out)
		}
	}
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
	writeJSON(c.w, http.StatusOK, x)
	return nil
}
