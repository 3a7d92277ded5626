package http

import (
	"bytes"
	"context"
	"encoding/json"
	nethttp "net/http"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/apiclient"
	"github.com/nhisync/nhisync/connector/native"
)

// Apply applies each write on its own: GET the record, check it still
// holds every Old value (else WriteStale; already holding every New value
// is WriteApplied without a call), then send update with If-Match when
// the GET gave an ETag (412: WriteStale). A 404 is WriteMissing; another
// refusal WriteFailed with the API's message. Create writes (provision:
// true) are sent to create; a create whose record the list already holds
// (same values) is taken as done. An error return (the API unreachable,
// credentials refused) fails the batch; writes sent before it are found
// in place (WriteApplied) when retried.
func (c *Connector) Apply(ctx context.Context, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	res := make([]nhisync.WriteResult, len(writes))
	for i, w := range writes {
		var r nhisync.WriteResult
		var err error
		if w.Create {
			r, err = c.create(ctx, w)
		} else {
			r, err = c.update(ctx, w)
		}
		if err != nil {
			// A write already sent is harmless to send again: it finds its
			// New values in place next pass.
			return nil, err
		}
		res[i] = r
	}
	return res, nil
}

func failed(err error) nhisync.WriteResult {
	return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
}

func (c *Connector) writable(name string) (*field, error) {
	for i, m := range c.sys.Fields {
		if m.Field != name {
			continue
		}
		if !c.sys.Direction.Writes() || !m.Direction.Writes() {
			return nil, c.errorf(nhisync.EINVALID, "field %s is read-only in this system", name)
		}
		return &c.fields[i], nil
	}
	return nil, c.errorf(nhisync.EINVALID, "field %s is not mapped in this system", name)
}

type pending struct {
	fd *field
	v  any
}

// plan checks changes against a record as fetched.
func (c *Connector) plan(m map[string]any, changes []nhisync.Change) (nhisync.WriteStatus, []pending, error) {
	var todo []pending
	stale := false
	for _, ch := range changes {
		fd, err := c.writable(ch.Field)
		if err != nil {
			return nhisync.WriteFailed, nil, err
		}
		raw, _ := fd.path.Get(m)
		cur, err := native.Decode(raw, fd.m)
		if err != nil {
			return nhisync.WriteFailed, nil, err
		}
		t := fd.m.Type
		switch {
		case t.Canonical(cur).Equal(t.Canonical(ch.New)):
		case t.Canonical(cur).Equal(t.Canonical(ch.Old)):
			v, err := native.Encode(ch.New, fd.m, true)
			if err != nil {
				return nhisync.WriteFailed, nil, err
			}
			todo = append(todo, pending{fd, v})
		default:
			stale = true
		}
	}
	if stale {
		return nhisync.WriteStale, nil, nil
	}
	return "", todo, nil
}

func (c *Connector) update(ctx context.Context, w nhisync.Write) (nhisync.WriteResult, error) {
	m, etag, err := c.fetch(ctx, w.ID)
	if err != nil {
		return nhisync.WriteResult{}, err
	}
	if m == nil {
		return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}, nil
	}
	st, todo, err := c.plan(m, w.Changes)
	if err != nil {
		return nhisync.WriteResult{Status: nhisync.WriteFailed, ID: w.ID, Err: err}, nil
	}
	if st != "" {
		return nhisync.WriteResult{Status: st, ID: w.ID}, nil
	}
	if len(todo) == 0 {
		return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}, nil
	}
	body, err := c.body(c.upd, w.ID, m, todo)
	if err != nil {
		return failed(err), nil
	}
	h := nethttp.Header{}
	if etag != "" {
		h.Set("If-Match", etag)
	}
	r, err := c.api.Do(ctx, apiclient.Request{Method: c.upd.method, Path: itemPath(c.upd.path, w.ID), Header: h, Body: body, ContentType: c.upd.contentType})
	if err != nil {
		return nhisync.WriteResult{}, err
	}
	switch {
	case r.Status >= 200 && r.Status < 300:
		return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}, nil
	case r.Status == nethttp.StatusPreconditionFailed:
		return nhisync.WriteResult{Status: nhisync.WriteStale, ID: w.ID}, nil
	case r.Status == nethttp.StatusNotFound || r.Status == nethttp.StatusGone:
		return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}, nil
	}
	return nhisync.WriteResult{Status: nhisync.WriteFailed, ID: w.ID, Err: c.errorf(nhisync.EINVALID, "writing record %s: %s", w.ID, c.api.Detail(r))}, nil
}

// body renders a write's body: merge (the changed paths, null clearing),
// full (the record with the changes) or the template.
func (c *Connector) body(wc writeCfg, id string, rec map[string]any, todo []pending) ([]byte, error) {
	full := deepCopy(rec)
	changed := map[string]any{}
	byField := map[string]any{}
	for _, p := range todo {
		if p.v == nil {
			p.fd.path.Delete(full)
		} else if err := p.fd.path.Set(full, p.v); err != nil {
			return nil, err
		}
		if err := p.fd.path.Set(changed, p.v); err != nil {
			return nil, err
		}
		byField[p.fd.m.Field] = p.v
	}
	switch {
	case wc.tmpl != nil:
		var b bytes.Buffer
		data := map[string]any{"ID": id, "Record": full, "Changes": changed, "Fields": byField}
		if err := wc.tmpl.Execute(&b, data); err != nil {
			return nil, c.errorf(nhisync.EINVALID, "the body template failed: %v", err)
		}
		if !json.Valid(b.Bytes()) {
			return nil, c.errorf(nhisync.EINVALID, "the body template did not make JSON (write values with {{json .Fields.owner}})")
		}
		return b.Bytes(), nil
	case wc.body == BodyFull:
		return json.Marshal(full)
	}
	return json.Marshal(changed)
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = deepCopy(sub)
		}
		out[k] = v
	}
	return out
}

// create POSTs a new record; its id is read from the answer (or, when the
// answer has none, its Location header's last segment).
func (c *Connector) create(ctx context.Context, w nhisync.Write) (nhisync.WriteResult, error) {
	if !c.sys.Provision {
		return failed(c.errorf(nhisync.EINVALID, "this system does not take new records (set provision: true to allow it)")), nil
	}
	var todo []pending
	for _, ch := range w.Changes {
		fd, err := c.writable(ch.Field)
		if err != nil {
			return failed(err), nil
		}
		v, err := native.Encode(ch.New, fd.m, true)
		if err != nil {
			return failed(err), nil
		}
		if v != nil {
			todo = append(todo, pending{fd, v})
		}
	}
	// A retried create finds the record it made.
	found := ""
	err := c.each(ctx, "", func(item any) error {
		m, ok := item.(map[string]any)
		if !ok || found != "" {
			return nil
		}
		creates := make([]nhisync.Change, len(w.Changes))
		for i, ch := range w.Changes {
			creates[i] = nhisync.Change{Field: ch.Field, Old: ch.New, New: ch.New}
		}
		if st, todo, err := c.plan(m, creates); err == nil && st == "" && len(todo) == 0 {
			v, _ := c.id.Get(m)
			found, _ = native.Text(v)
		}
		return nil
	})
	if err != nil {
		return nhisync.WriteResult{}, err
	}
	if found != "" {
		return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: found}, nil
	}
	body, err := c.body(c.crt, "", map[string]any{}, todo)
	if err != nil {
		return failed(err), nil
	}
	r, err := c.api.Do(ctx, apiclient.Request{Method: c.crt.method, Path: c.crt.path, Body: body, ContentType: c.crt.contentType})
	if err != nil {
		return nhisync.WriteResult{}, err
	}
	if r.Status < 200 || r.Status >= 300 {
		return failed(c.errorf(nhisync.EINVALID, "creating a record: %s", c.api.Detail(r))), nil
	}
	var m map[string]any
	id := ""
	if r.JSON(&m) == nil && m != nil {
		v, _ := c.id.Get(m)
		id, _ = native.Text(v)
	}
	if id == "" {
		if loc := r.Header.Get("Location"); loc != "" {
			id = loc[strings.LastIndex(loc, "/")+1:]
		}
	}
	if id == "" {
		return failed(c.errorf(nhisync.EINVALID, "the API created a record but its answer names no id (at %s) nor a Location", c.id)), nil
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: id}, nil
}
