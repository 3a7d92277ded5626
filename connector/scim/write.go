package scim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/apiclient"
	"github.com/nhisync/nhisync/connector/native"
)

// patchOp is one operation of a PatchOp request (RFC 7644 §3.5.2).
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Apply applies writes one resource at a time. For each write it reads
// the resource, compares the changed fields with Old (a resource no
// longer holding an Old value is WriteStale, one already holding every
// New value WriteApplied unchanged, one gone WriteMissing), then sends one
// PATCH of the changed paths with If-Match on the version it read; a 412
// means the resource changed in between: WriteStale, nothing applied. A
// write the server refuses (a read-only attribute, a schema violation)
// fails alone. Apply returns an error only when the server cannot be
// reached or refuses the credentials.
//
// Updates of different records go out on up to Parallel connections at
// once (a round trip per read and per PATCH dominates); writes of one
// record keep their order. Creates go one at a time, after the updates.
func (c *Connector) Apply(ctx context.Context, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	results := make([]nhisync.WriteResult, len(writes))
	lanes := map[string][]int{}
	var order []string
	var creates []int
	for i, w := range writes {
		if w.Create {
			creates = append(creates, i)
			continue
		}
		if _, ok := lanes[w.ID]; !ok {
			order = append(order, w.ID)
		}
		lanes[w.ID] = append(lanes[w.ID], i)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Parallel)
	for _, id := range order {
		g.Go(func() error {
			for _, i := range lanes[id] {
				r, err := c.update(gctx, writes[i])
				if err != nil {
					return err
				}
				results[i] = r
			}
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, i := range creates {
		r, err := c.create(ctx, writes[i])
		if err != nil {
			return nil, err
		}
		results[i] = r
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// Parallel is how many records Apply writes at once.
const Parallel = 4

func failed(err error) nhisync.WriteResult {
	return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
}

// fetched is a resource as read for a write.
type fetched struct {
	res     map[string]any
	id      string // the SCIM id, for its URL
	version string // ETag or meta.version; "" when the server gives none
}

// fetch reads the resource whose id (the id setting's attribute) is id;
// nil when there is none. A fatal error (unreachable, refused) is err; a
// problem with this record alone is a failed result.
func (c *Connector) fetch(ctx context.Context, id string) (*fetched, *nhisync.WriteResult, error) {
	if c.cfg.id == "id" && c.cfg.filter == "" {
		res, err := c.api.Do(ctx, apiclient.Request{Method: http.MethodGet, Path: c.cfg.resource + "/" + url.PathEscape(id)})
		if err != nil {
			return nil, nil, err
		}
		switch {
		case res.Status == http.StatusNotFound:
			return nil, nil, nil
		case res.Status != http.StatusOK:
			r := failed(c.api.Errorf(nhisync.EUNAVAIL, "read record %s: %s", id, c.api.Detail(res)))
			return nil, &r, nil
		}
		m, ok := decodeResource(res.Body)
		if !ok {
			r := failed(c.api.Errorf(nhisync.EINVALID, "record %s cannot be decoded: the answer is not a JSON object", id))
			return nil, &r, nil
		}
		f := &fetched{res: m, id: id, version: res.Header.Get("ETag")}
		if f.version == "" {
			f.version = metaVersion(m)
		}
		return f, nil, nil
	}
	q := url.Values{"filter": {and(c.cfg.filter, scimPath(c.idPath)+" eq "+quote(id))}, "count": {"2"}}
	page, err := c.page(ctx, q)
	if err != nil {
		if nhisync.ErrorCode(err) == nhisync.EUNAVAIL {
			r := failed(err)
			return nil, &r, nil
		}
		return nil, nil, err
	}
	var found []map[string]any
	for _, raw := range page.Resources {
		if m, ok := decodeResource(raw); ok {
			if v, _ := c.idPath.Get(m); v != nil {
				if s, _ := native.Text(v); trim(s) == id {
					found = append(found, m)
				}
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, nil, nil
	case 1:
	default:
		r := failed(c.api.Errorf(nhisync.EINVALID, "%d resources have %s %q; the id setting must name a unique attribute", len(found), c.cfg.id, id))
		return nil, &r, nil
	}
	sid, _ := found[0]["id"].(string)
	return &fetched{res: found[0], id: sid, version: metaVersion(found[0])}, nil, nil
}

func metaVersion(m map[string]any) string {
	if meta, ok := m["meta"].(map[string]any); ok {
		if v, ok := meta["version"].(string); ok {
			return v
		}
	}
	return ""
}

// op returns the operation setting path p of res to x (nil removes it).
func (c *Connector) op(res map[string]any, p native.Path, x any) *patchOp {
	cur, present := p.Get(res)
	path := scimPath(p)
	if x == nil {
		if !present || cur == nil {
			return nil
		}
		return &patchOp{Op: "remove", Path: path}
	}
	if elems, ok := x.([]any); ok {
		x = elementsFor(cur, elems, complexMultiValued[strings.ToLower(p[len(p)-1])])
		if present {
			return &patchOp{Op: "replace", Path: path, Value: x}
		}
		return &patchOp{Op: "add", Path: path, Value: x}
	}
	// add replaces a single value (RFC 7644 §3.5.2.1) and, unlike replace
	// on some servers, makes a missing parent of a sub-attribute path.
	if !present || len(p) > 1 {
		return &patchOp{Op: "add", Path: path, Value: x}
	}
	return &patchOp{Op: "replace", Path: path, Value: x}
}

// elementsFor builds a multi-valued attribute holding elems: elements of
// cur whose value stays are kept whole (type, primary, display…), new
// ones are {"value": e} where the attribute holds objects, else strings.
func elementsFor(cur any, elems []any, complex bool) []any {
	old, _ := cur.([]any)
	want := map[string]bool{}
	for _, e := range elems {
		want[e.(string)] = true
	}
	var out []any
	for _, e := range old {
		o, isObj := e.(map[string]any)
		if isObj {
			complex = true
			if v, ok := o["value"]; ok {
				if s, _ := native.Text(v); want[s] {
					out = append(out, o)
					delete(want, s)
				}
			}
		}
	}
	for _, e := range elems {
		s := e.(string)
		if !want[s] {
			continue
		}
		delete(want, s)
		if complex {
			out = append(out, map[string]any{"value": s})
		} else {
			out = append(out, s)
		}
	}
	return out
}

func (c *Connector) mapping(ch nhisync.Change) (*nhisync.Mapping, int, error) {
	m := c.sys.Mapping(ch.Field)
	switch {
	case m == nil:
		return nil, 0, c.api.Errorf(nhisync.EINVALID, "field %s is not mapped in this system", ch.Field)
	case !c.sys.Direction.Writes() || !m.Direction.Writes():
		return nil, 0, c.api.Errorf(nhisync.EINVALID, "field %s is read-only in this system", ch.Field)
	}
	return m, slices.Index(c.sys.Fields, m), nil
}

func (c *Connector) update(ctx context.Context, w nhisync.Write) (nhisync.WriteResult, error) {
	for _, ch := range w.Changes {
		if _, _, err := c.mapping(ch); err != nil {
			return failed(err), nil
		}
	}
	f, bad, err := c.fetch(ctx, w.ID)
	if err != nil || bad != nil {
		return deref(bad), err
	}
	if f == nil {
		return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}, nil
	}
	var ops []patchOp
	for _, ch := range w.Changes {
		m, i, _ := c.mapping(ch)
		x, _ := c.paths[i].Get(f.res)
		cur, err := native.Decode(values(x), m)
		if err != nil {
			return failed(err), nil
		}
		t := m.Type
		cur = t.Canonical(cur)
		switch {
		case cur.Equal(t.Canonical(ch.New)):
			continue
		case !cur.Equal(t.Canonical(ch.Old)):
			return nhisync.WriteResult{Status: nhisync.WriteStale, ID: w.ID}, nil
		}
		nx, err := native.Encode(ch.New, m, true)
		if err != nil {
			return failed(err), nil
		}
		if op := c.op(f.res, c.paths[i], nx); op != nil {
			ops = append(ops, *op)
		}
	}
	if len(ops) == 0 {
		return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}, nil
	}
	h := http.Header{}
	if f.version != "" {
		h.Set("If-Match", f.version)
	}
	res, err := c.api.Do(ctx, apiclient.Request{
		Method: http.MethodPatch, Path: c.cfg.resource + "/" + url.PathEscape(f.id), Header: h,
		Body:        map[string]any{"schemas": []string{urnPatchOp}, "Operations": ops},
		ContentType: "application/scim+json",
	})
	if err != nil {
		if nhisync.ErrorCode(err) == nhisync.EUNAVAIL {
			return failed(err), nil
		}
		return nhisync.WriteResult{}, err
	}
	switch {
	case res.Status == http.StatusPreconditionFailed:
		return nhisync.WriteResult{Status: nhisync.WriteStale, ID: w.ID}, nil
	case res.Status == http.StatusNotFound:
		return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}, nil
	case res.Status >= 300:
		return failed(c.api.Errorf(nhisync.EINVALID, "record %s: the server refused the PATCH: %s", w.ID, c.api.Detail(res))), nil
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}, nil
}

func deref(r *nhisync.WriteResult) nhisync.WriteResult {
	if r == nil {
		return nhisync.WriteResult{}
	}
	return *r
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// create POSTs a new resource holding the mapped values, unless one with
// the same match fields is there already (a retried create), which is
// then brought to the values written.
func (c *Connector) create(ctx context.Context, w nhisync.Write) (nhisync.WriteResult, error) {
	if !c.sys.Provision {
		return failed(c.api.Errorf(nhisync.EINVALID, "cannot create a record: the system does not have provision: true")), nil
	}
	res := map[string]any{}
	schemas := []string{}
	if s, ok := coreSchemas[strings.ToLower(c.cfg.resource)]; ok {
		schemas = append(schemas, s)
	}
	var terms []string
	for _, ch := range w.Changes {
		m, i, err := c.mapping(ch)
		if err != nil {
			return failed(err), nil
		}
		x, err := native.Encode(ch.New, m, true)
		if err != nil {
			return failed(err), nil
		}
		if x == nil {
			continue
		}
		p := c.paths[i]
		if elems, ok := x.([]any); ok {
			x = elementsFor(nil, elems, complexMultiValued[strings.ToLower(p[len(p)-1])])
		}
		if err := p.Set(res, x); err != nil {
			return failed(c.api.Errorf(nhisync.EINVALID, "field %s: %v", ch.Field, err)), nil
		}
		if len(p) > 1 && strings.Contains(p[0], ":") && !slices.Contains(schemas, p[0]) {
			schemas = append(schemas, p[0])
		}
		if slices.Contains(c.kind.Match, ch.Field) && !ch.New.IsSet() {
			terms = append(terms, scimPath(p)+" eq "+quote(ch.New.Text()))
		}
	}
	idSet := false
	if v, _ := c.idPath.Get(res); v != nil {
		idSet = true
	}
	if c.cfg.id != "id" && !idSet {
		_ = c.idPath.Set(res, newID())
	}
	res["schemas"] = schemas
	// A retried create finds the resource it made.
	if len(terms) > 0 && len(terms) == len(c.kind.Match) {
		page, err := c.page(ctx, url.Values{"filter": {and(append([]string{c.cfg.filter}, terms...)...)}, "count": {"2"}})
		if err != nil {
			return failed(err), nil
		}
		if len(page.Resources) == 1 {
			obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.sys.Fields))}
			if ok, err := c.observe(page.Resources[0], &obs); err == nil && ok {
				up := nhisync.Write{ID: obs.ID}
				for _, ch := range w.Changes {
					if m, i, _ := c.mapping(ch); m != nil {
						up.Changes = append(up.Changes, nhisync.Change{Field: ch.Field, Old: obs.Values[i], New: ch.New})
					}
				}
				r, err := c.update(ctx, up)
				r.ID = obs.ID
				return r, err
			}
		}
	}
	out, err := c.api.Do(ctx, apiclient.Request{Method: http.MethodPost, Path: c.cfg.resource, Body: res, ContentType: "application/scim+json"})
	if err != nil {
		if nhisync.ErrorCode(err) == nhisync.EUNAVAIL {
			return failed(err), nil
		}
		return nhisync.WriteResult{}, err
	}
	if out.Status >= 300 {
		return failed(c.api.Errorf(nhisync.EINVALID, "create: the server refused the POST: %s", c.api.Detail(out))), nil
	}
	made, ok := decodeResource(out.Body)
	if !ok {
		return failed(c.api.Errorf(nhisync.EUNAVAIL, "create: the answer is not a resource")), nil
	}
	idv, _ := c.idPath.Get(made)
	id, _ := native.Text(idv)
	if trim(id) == "" {
		return failed(c.api.Errorf(nhisync.EUNAVAIL, "create: the new resource has no %s", c.cfg.id)), nil
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: trim(id)}, nil
}
