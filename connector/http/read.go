package http

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/apiclient"
	"github.com/nhisync/nhisync/connector/native"
)

func (c *Connector) firstQuery(cursor string) url.Values {
	q := url.Values{}
	for k, v := range c.list.query {
		q[k] = v
	}
	switch c.list.paging {
	case PagingPage:
		q.Set(c.list.pageParam, strconv.Itoa(c.list.firstPage))
		q.Set(c.list.sizeParam, strconv.Itoa(c.list.size))
	}
	if cursor != "" && c.cursor != nil {
		q.Set(c.cursor.param, cursor)
	}
	return q
}

// page GETs one page of the list and returns its items, the response and,
// with cursor paging, the next cursor or link from the body.
func (c *Connector) page(ctx context.Context, path string, q url.Values) ([]any, *apiclient.Response, string, error) {
	r, err := c.api.Do(ctx, apiclient.Request{Method: nethttp.MethodGet, Path: path, Query: q})
	if err != nil {
		return nil, nil, "", err
	}
	if r.Status != nethttp.StatusOK {
		return nil, nil, "", c.errorf(nhisync.EUNAVAIL, "listing %s: %s", path, c.api.Detail(r))
	}
	var body any
	if err := r.JSON(&body); err != nil {
		return nil, nil, "", c.errorf(nhisync.EINVALID, "listing %s: the answer is not JSON: %v", path, err)
	}
	v := body
	if c.list.items != nil {
		m, ok := body.(map[string]any)
		if !ok {
			return nil, nil, "", c.errorf(nhisync.EINVALID, "listing %s: the answer is not an object holding %s; fix list.items", path, c.list.items)
		}
		v, _ = c.list.items.Get(m)
	}
	if v == nil {
		return nil, r, "", nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, nil, "", c.errorf(nhisync.EINVALID, "listing %s: %s is not an array; set list.items to the path of the records' array", path, itemsName(c.list.items))
	}
	next := ""
	if c.list.paging == PagingCursor {
		if m, ok := body.(map[string]any); ok {
			next = nextOf(m, c.list.next)
		}
	}
	return items, r, next, nil
}

func itemsName(p native.Path) string {
	if p == nil {
		return "the answer"
	}
	return p.String()
}

func nextOf(m map[string]any, p native.Path) string {
	v, _ := p.Get(m)
	s, _ := native.Text(v)
	return strings.TrimSpace(s)
}

// relative turns a next link into a path under the API's base; a link
// to another host or outside the base is refused (the credentials would
// go with it).
func (c *Connector) relative(link string) (string, url.Values, error) {
	u, err := c.api.Base.Parse(link)
	if err != nil {
		return "", nil, c.errorf(nhisync.EINVALID, "the next-page link %q is not a URL", link)
	}
	b := c.api.Base
	if u.Scheme != b.Scheme || u.Host != b.Host || !strings.HasPrefix(u.Path, strings.TrimRight(b.Path, "/")) {
		return "", nil, c.errorf(nhisync.EINVALID, "the next-page link leads outside the API's url (%s); nhisync does not send the credentials there", u.Host)
	}
	return strings.TrimPrefix(u.Path, strings.TrimRight(b.Path, "/")), u.Query(), nil
}

// list streams every item of the list (filtered by cursor when set) to fn.
func (c *Connector) each(ctx context.Context, cursor string, fn func(item any) error) error {
	path, q := c.list.path, c.firstQuery(cursor)
	pageNo := c.list.firstPage
	seen := map[string]bool{}
	for n := 0; n < maxPages; n++ {
		items, r, bodyNext, err := c.page(ctx, path, q)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := fn(it); err != nil {
				return err
			}
		}
		next := ""
		switch c.list.paging {
		case PagingNone:
			return nil
		case PagingPage:
			if len(items) < c.list.size {
				return nil
			}
			pageNo++
			q = c.firstQuery(cursor)
			q.Set(c.list.pageParam, strconv.Itoa(pageNo))
			continue
		case PagingCursor:
			next = bodyNext
		case PagingLink:
			next = linkNext(r.Header.Values("Link"))
		}
		if next == "" {
			return nil
		}
		if seen[next] {
			return c.errorf(nhisync.EUNAVAIL, "listing %s: the API gave the same next page twice (%s); the listing loops", c.list.path, next)
		}
		seen[next] = true
		if c.list.paging == PagingCursor && !strings.Contains(next, "/") {
			q = c.firstQuery(cursor)
			q.Set(c.list.curParam, next)
			continue
		}
		if path, q, err = c.relative(next); err != nil {
			return err
		}
	}
	return c.errorf(nhisync.EUNAVAIL, "listing %s: more than %d pages", c.list.path, maxPages)
}

// linkNext returns the URL of rel="next" in Link headers (RFC 8288).
func linkNext(headers []string) string {
	for _, h := range headers {
		for _, part := range strings.Split(h, ",") {
			seg := strings.Split(part, ";")
			if len(seg) < 2 {
				continue
			}
			target := strings.TrimSpace(seg[0])
			if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			for _, p := range seg[1:] {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") {
					for _, rel := range strings.Fields(strings.Trim(v, `"`)) {
						if strings.EqualFold(rel, "next") {
							return target[1 : len(target)-1]
						}
					}
				}
			}
		}
	}
	return ""
}

// Snapshot streams every record of the list, in the API's order. An item
// without an id is skipped (it cannot be linked); a value that is not one
// (an object where text belongs) reads as nhisync.Malformed and is
// quarantined on that record, and the read goes on; an item that is not
// an object fails the read (which record it is cannot be told).
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	_, err := c.read(ctx, "", emit)
	return err
}

// Changes lists only records changed since cursor (the API filters by
// cursor.param; the next cursor is the largest cursor.field seen, so a
// record sharing the boundary value is read again, never missed).
func (c *CursorConnector) Changes(ctx context.Context, cursor string, emit func(nhisync.Observation) error) (string, error) {
	next, err := c.read(ctx, cursor, emit)
	if err != nil {
		return "", err
	}
	if next == "" {
		next = cursor
	}
	return next, nil
}

func (c *Connector) read(ctx context.Context, cursor string, emit func(nhisync.Observation) error) (string, error) {
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.fields))}
	max := ""
	n := 0
	err := c.each(ctx, cursor, func(item any) error {
		n++
		m, ok := item.(map[string]any)
		if !ok {
			return c.errorf(nhisync.EINVALID, "listing %s: item %d is not an object", c.list.path, n)
		}
		if c.cursor != nil {
			v, _ := c.cursor.field.Get(m)
			if s, ok := native.Text(v); ok && later(s, max) {
				max = s
			}
		}
		ok, err := c.observe(m, &obs)
		if err != nil || !ok {
			return err
		}
		return emit(obs)
	})
	return max, err
}

// later reports whether cursor value a sorts after b: numerically when
// both are numbers, else as text (RFC 3339 times in one zone sort so).
func later(a, b string) bool {
	if b == "" {
		return a != ""
	}
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	if ea == nil && eb == nil {
		return fa > fb
	}
	return a > b
}

// observe fills obs from one item and reports false for an item without
// an id.
func (c *Connector) observe(m map[string]any, obs *nhisync.Observation) (bool, error) {
	v, _ := c.id.Get(m)
	id, ok := native.Text(v)
	id = strings.TrimSpace(id)
	if !ok || id == "" {
		return false, nil
	}
	obs.ID = id
	for i := range c.fields {
		fd := &c.fields[i]
		if !fd.m.Direction.Reads() {
			obs.Values[i] = nhisync.Value{}
			continue
		}
		raw, _ := fd.path.Get(m)
		val, err := native.Decode(raw, fd.m)
		if err != nil {
			return false, c.errorf(nhisync.EINVALID, "record %s: %s", id, nhisync.ErrorMessage(err))
		}
		obs.Values[i] = val
	}
	return true, nil
}

// fetch GETs one record: nil when the API says 404.
func (c *Connector) fetch(ctx context.Context, id string) (map[string]any, string, error) {
	r, err := c.api.Do(ctx, apiclient.Request{Method: nethttp.MethodGet, Path: itemPath(c.get, id)})
	if err != nil {
		return nil, "", err
	}
	switch r.Status {
	case nethttp.StatusOK:
	case nethttp.StatusNotFound, nethttp.StatusGone:
		return nil, "", nil
	default:
		return nil, "", c.errorf(nhisync.EUNAVAIL, "reading record %s: %s", id, c.api.Detail(r))
	}
	var m map[string]any
	if err := r.JSON(&m); err != nil || m == nil {
		return nil, "", c.errorf(nhisync.EINVALID, "reading record %s: the answer is not a JSON object", id)
	}
	etag := r.Header.Get("ETag")
	c.mu.Lock()
	c.sawGet, c.etags = true, etag != ""
	c.mu.Unlock()
	return m, etag, nil
}

// jsonText is the template function json: a value as JSON text.
func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("json: %w", err)
	}
	return string(b), nil
}
