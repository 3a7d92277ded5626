package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/apiclient"
	"github.com/nhisync/nhisync/connector/native"
)

// listResponse is a page of a list (RFC 7644 §3.4.2).
type listResponse struct {
	TotalResults int               `json:"totalResults"`
	StartIndex   int               `json:"startIndex"`
	ItemsPerPage int               `json:"itemsPerPage"`
	Resources    []json.RawMessage `json:"Resources"`
}

// Snapshot pages through every resource the filter selects.
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	_, err := c.list(ctx, c.cfg.filter, emit)
	return err
}

// Changes reads the resources changed since cursor (a meta.lastModified
// time; "" reads all) and returns the latest lastModified seen. A server
// that does not filter on meta.lastModified is read whole each time, and
// the cursor stays "".
func (c *Connector) Changes(ctx context.Context, cursor string, emit func(nhisync.Observation) error) (string, error) {
	ok, err := c.incremental(ctx)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", c.Snapshot(ctx, emit)
	}
	filter := c.cfg.filter
	if cursor != "" {
		if _, err := time.Parse(time.RFC3339Nano, cursor); err != nil {
			return "", c.api.Errorf(nhisync.EINVALID, "cursor %q is not a time; it was not made by this connector", cursor)
		}
		filter = and(filter, "meta.lastModified ge "+quote(cursor))
	}
	latest, err := c.list(ctx, filter, emit)
	if err != nil {
		return "", err
	}
	if latest.IsZero() {
		return cursor, nil
	}
	if cursor != "" {
		if t, _ := time.Parse(time.RFC3339Nano, cursor); t.After(latest) {
			return cursor, nil
		}
	}
	return latest.UTC().Format(time.RFC3339Nano), nil
}

// list pages through the resources filter selects and returns the latest
// meta.lastModified among them. Offset paging is not stable: a resource
// deleted before the current offset while the list is read shifts the
// rest, and one would be skipped (then taken as vanished). So a read whose
// pages disagree on totalResults, or that got fewer resources than the
// total, is done again, emitting only ids not yet emitted; a list that
// keeps moving after three reads fails the read (EUNAVAIL).
func (c *Connector) list(ctx context.Context, filter string, emit func(nhisync.Observation) error) (time.Time, error) {
	var latest time.Time
	seen := map[string]bool{}
	for try := 1; ; try++ {
		stable, err := c.listOnce(ctx, filter, seen, &latest, emit)
		if err != nil || stable {
			return latest, err
		}
		if try == 3 {
			return latest, c.api.Errorf(nhisync.EUNAVAIL, "list %s: the list kept changing while it was read (totalResults moved between pages, three times); not taken as complete", c.cfg.resource)
		}
	}
}

func (c *Connector) listOnce(ctx context.Context, filter string, seen map[string]bool, latest *time.Time, emit func(nhisync.Observation) error) (stable bool, err error) {
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.sys.Fields))}
	start, total, got := 1, -1, 0
	stable = true
	for {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(c.cfg.pageSize)}}
		if filter != "" {
			q.Set("filter", filter)
		}
		page, err := c.page(ctx, q)
		if err != nil {
			return false, err
		}
		if total >= 0 && page.TotalResults != total {
			stable = false
		}
		total = page.TotalResults
		got += len(page.Resources)
		for _, raw := range page.Resources {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			ok, err := c.observe(raw, &obs)
			if err != nil {
				return false, err
			}
			if !ok || seen[obs.ID] {
				continue // no id, or emitted already
			}
			seen[obs.ID] = true
			if obs.Modified.After(*latest) {
				*latest = obs.Modified
			}
			if err := emit(obs); err != nil {
				return false, err
			}
		}
		start += len(page.Resources)
		if len(page.Resources) == 0 || start > page.TotalResults {
			return stable && got >= total, nil
		}
	}
}

func (c *Connector) page(ctx context.Context, q url.Values) (*listResponse, error) {
	res, err := c.api.Do(ctx, apiclient.Request{Method: http.MethodGet, Path: c.cfg.resource, Query: q})
	if err != nil {
		return nil, err
	}
	if res.Status != http.StatusOK {
		return nil, c.api.Errorf(nhisync.EUNAVAIL, "list %s: %s", c.cfg.resource, c.api.Detail(res))
	}
	var page listResponse
	if err := json.Unmarshal(res.Body, &page); err != nil {
		return nil, c.api.Errorf(nhisync.EUNAVAIL, "list %s: the answer is not a SCIM ListResponse", c.cfg.resource)
	}
	return &page, nil
}

// decodeResource parses one resource, numbers kept as json.Number.
func decodeResource(raw []byte) (map[string]any, bool) {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// observe fills obs from one resource; ok is false when it has no id.
// A value that cannot be decoded (an object where a value belongs, an
// element without a value) reads as Malformed, so the engine quarantines
// that record, by system and id, and the read goes on.
func (c *Connector) observe(raw json.RawMessage, obs *nhisync.Observation) (bool, error) {
	res, ok := decodeResource(raw)
	if !ok {
		return false, nil
	}
	idv, _ := c.idPath.Get(res)
	id, _ := native.Text(idv)
	obs.ID = trim(id)
	if obs.ID == "" {
		return false, nil
	}
	for i, m := range c.sys.Fields {
		if !m.Direction.Reads() {
			obs.Values[i] = nhisync.Value{}
			continue
		}
		x, _ := c.paths[i].Get(res)
		v, err := native.Decode(values(x), m)
		if err != nil {
			return false, c.api.Errorf(nhisync.EINVALID, "record %s: %s", obs.ID, nhisync.ErrorMessage(err))
		}
		obs.Values[i] = v
	}
	obs.Modified = time.Time{}
	if meta, ok := res["meta"].(map[string]any); ok {
		if s, ok := meta["lastModified"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				obs.Modified = t
			}
		}
	}
	return true, nil
}

// values turns a multi-valued attribute of objects into the list of their
// value sub-attributes; other values pass as they are. An element without
// a value is left an object, which Decode reads as Malformed.
func values(x any) any {
	arr, ok := x.([]any)
	if !ok {
		return x
	}
	out := make([]any, len(arr))
	for i, e := range arr {
		if o, ok := e.(map[string]any); ok {
			if v, ok := o["value"]; ok {
				out[i] = v
				continue
			}
		}
		out[i] = e
	}
	return out
}
