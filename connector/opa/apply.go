package opa

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// Apply reads the document once, decides each write against it (a record
// gone is WriteMissing; one no longer holding an Old value WriteStale; one
// already holding every New value WriteApplied unchanged), and sends the
// rest as one JSON Patch of field-level operations, which OPA applies in
// one transaction. When that PATCH is refused (a record changed shape in
// between), each write is sent alone so one bad record fails only itself.
// Creates (provision: true) PUT a new record with If-None-Match: *; a
// retried create finds the record it made by the kind's match fields.
// Apply returns an error only when OPA cannot be reached or read.
func (c *Connector) Apply(ctx context.Context, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	results := make([]nhisync.WriteResult, len(writes))
	if len(writes) == 0 {
		return results, nil
	}
	doc, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	var batch [][]patchOp
	var idx []int
	for i, w := range writes {
		if w.Create {
			results[i] = c.create(ctx, doc, w)
			if results[i].Status == nhisync.WriteApplied {
				if doc, err = c.read(ctx); err != nil {
					return nil, err
				}
			}
			continue
		}
		ops, res := c.plan(doc, w)
		results[i] = res
		if len(ops) > 0 {
			batch = append(batch, ops)
			idx = append(idx, i)
		}
	}
	if len(batch) == 0 {
		return results, nil
	}
	var all []patchOp
	for _, ops := range batch {
		all = append(all, ops...)
	}
	status, _, err := c.patch(ctx, all)
	if err != nil {
		return nil, err
	}
	if status < 300 {
		return results, nil
	}
	// One operation was refused: send each write alone.
	for k, ops := range batch {
		status, detail, err := c.patch(ctx, ops)
		if err != nil {
			return nil, err
		}
		if status >= 300 {
			results[idx[k]] = nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.EINVALID, "record %s: OPA refused the write: %s", writes[idx[k]].ID, detail)}
		}
	}
	return results, nil
}

func (c *Connector) patch(ctx context.Context, ops []patchOp) (int, string, error) {
	res, err := c.api.Do(ctx, apiclientRequest(http.MethodPatch, c.doc, nil, ops, "application/json-patch+json"))
	if err != nil {
		return 0, "", err
	}
	if res.Status >= 300 {
		return res.Status, c.api.Detail(res), nil
	}
	return res.Status, "", nil
}

// plan decides one update against the document and returns its patch
// operations (none when nothing is to be sent).
func (c *Connector) plan(doc map[string]any, w nhisync.Write) ([]patchOp, nhisync.WriteResult) {
	applied := nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}
	v, ok := doc[w.ID]
	if !ok {
		return nil, nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return nil, nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.EINVALID, "record %s cannot be decoded (it is %s, not an object); fix it in OPA", w.ID, kindOf(v))}
	}
	type todo struct {
		i int
		v nhisync.Value
	}
	var list []todo
	stale := false
	for _, ch := range w.Changes {
		m := c.sys.Mapping(ch.Field)
		switch {
		case m == nil:
			return nil, nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.EINVALID, "field %s is not mapped in this system", ch.Field)}
		case !c.sys.Direction.Writes() || !m.Direction.Writes():
			return nil, nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.EINVALID, "field %s is read-only in this system", ch.Field)}
		}
		i := slices.Index(c.sys.Fields, m)
		x, _ := c.paths[i].Get(rec)
		cur, err := native.Decode(x, m)
		if err != nil {
			return nil, nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
		}
		t := m.Type
		cur = t.Canonical(cur)
		switch {
		case cur.Equal(t.Canonical(ch.New)):
		case cur.Equal(t.Canonical(ch.Old)):
			list = append(list, todo{i, ch.New})
		default:
			stale = true
		}
	}
	if stale {
		return nil, nhisync.WriteResult{Status: nhisync.WriteStale, ID: w.ID}
	}
	var ops []patchOp
	for _, td := range list {
		m := c.sys.Fields[td.i]
		x, err := native.Encode(td.v, m, true)
		if err != nil {
			return nil, nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
		}
		ops = append(ops, fieldOp(rec, w.ID, c.paths[td.i], x)...)
	}
	return ops, applied
}

// fieldOp returns the operation setting path p of record id to x (nil x
// removes it): add at the first key missing on the way (building the
// objects below it), replace where the key is there, remove when x is nil
// and the key is there. A key on the way that holds a non-object is
// replaced by an object.
func fieldOp(rec map[string]any, id string, p native.Path, x any) []patchOp {
	at := "/" + ptr(id)
	cur := rec
	for k, key := range p {
		at += "/" + ptr(key)
		v, ok := cur[key]
		last := k == len(p)-1
		switch {
		case last && x == nil:
			if !ok {
				return nil
			}
			return []patchOp{{Op: "remove", Path: at}}
		case last:
			return []patchOp{{Op: "add", Path: at, Value: x}}
		case !ok:
			if x == nil {
				return nil
			}
			val := map[string]any{}
			_ = p[k+1:].Set(val, x)
			return []patchOp{{Op: "add", Path: at, Value: val}}
		}
		next, isObj := v.(map[string]any)
		if !isObj {
			if x == nil {
				return nil
			}
			val := map[string]any{}
			_ = p[k+1:].Set(val, x)
			return []patchOp{{Op: "add", Path: at, Value: val}}
		}
		cur = next
	}
	return nil
}

// create PUTs a new record, unless one with the same match fields is
// there already (a retried create).
func (c *Connector) create(ctx context.Context, doc map[string]any, w nhisync.Write) nhisync.WriteResult {
	if !c.sys.Provision {
		return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.EINVALID, "cannot create a record: the system does not have provision: true")}
	}
	rec := map[string]any{}
	id := ""
	for _, ch := range w.Changes {
		m := c.sys.Mapping(ch.Field)
		if m == nil {
			return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.EINVALID, "field %s is not mapped in this system", ch.Field)}
		}
		x, err := native.Encode(ch.New, m, true)
		if err != nil {
			return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
		}
		if x == nil {
			continue
		}
		p := c.paths[slices.Index(c.sys.Fields, m)]
		if err := p.Set(rec, x); err != nil {
			return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.EINVALID, "field %s: %v", ch.Field, err)}
		}
		if m.Name == c.sys.ID {
			id = ch.New.Text()
		}
	}
	if key, ok := c.matchKey(rec); ok {
		for oid, v := range doc {
			if o, isObj := v.(map[string]any); isObj {
				if k, ok := c.matchKey(o); ok && k == key {
					return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: oid}
				}
			}
		}
	}
	if id == "" {
		id = newID()
	}
	if c.idPath != nil {
		_ = c.idPath.Set(rec, id)
	}
	res, err := c.api.Do(ctx, apiclientRequest(http.MethodPut, append(slices.Clone(c.doc), id), http.Header{"If-None-Match": {"*"}}, rec, ""))
	if err != nil {
		return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
	}
	switch {
	case res.Status == http.StatusNotModified:
		return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.ECONFLICT, "record %s exists already in OPA", id)}
	case res.Status >= 300:
		return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: c.api.Errorf(nhisync.EINVALID, "create record %s: %s", id, c.api.Detail(res))}
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: id}
}

func escapePath(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = url.PathEscape(s)
	}
	return strings.Join(out, "/")
}
