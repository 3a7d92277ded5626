// Package opa is the connector for Open Policy Agent's data API: a system
// is one data document under /v1/data (`path`, e.g. nhi/accounts) holding
// an object keyed by record id, each value an object whose keys (native
// paths) are the mapped fields.
//
// What OPA guarantees, and what it does not: one PATCH of /v1/data is one
// store transaction, applied whole or not at all; PUT with If-None-Match: *
// creates a document only when it is absent. OPA has no compare-and-swap
// on the data API: no ETag, no revision a write can be made conditional
// on, and its JSON Patch has no "test" operation. So Apply reads the
// document, compares every write's Old values with what it holds (the
// engine's rule, SPEC §3.7), and sends the writes that still hold in one
// PATCH of field-level operations. A change another client makes to the
// same field between that read and that PATCH (one round trip, typically
// milliseconds) is overwritten; a change to any other field or record is
// not, since only the mapped fields written are touched. The README names
// this window.
package opa

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/apiclient"
	"github.com/nhisync/nhisync/connector/native"
)

// Setting names (SPEC §5).
const (
	SettingURL   = "url"   // the server root, e.g. http://127.0.0.1:8181
	SettingPath  = "path"  // a slash-separated path under /v1/data
	SettingToken = "token" // bearer token (OPA's --authentication=token)
)

func init() {
	nhisync.RegisterDriver("opa", nhisync.Driver{
		Settings: []string{SettingURL, SettingPath, SettingToken, apiclient.SettingTimeout, apiclient.SettingRetries},
		Validate: Validate,
		Open:     Open,
	})
}

var (
	_ nhisync.Connector        = (*Connector)(nil)
	_ nhisync.Checker          = (*Connector)(nil)
	_ nhisync.Scrubber         = (*Connector)(nil)
	_ nhisync.CapabilityTeller = (*Connector)(nil)
)

// Connector reaches one OPA data document. It is safe for concurrent use.
type Connector struct {
	sys    *nhisync.System
	kind   *nhisync.Kind
	api    *apiclient.Client
	doc    []string // path segments under /v1/data
	paths  []native.Path
	idPath native.Path // sys.ID inside a record, when set and not mapped
}

// Scrub implements nhisync.Scrubber: s without the API's credentials.
func (c *Connector) Scrub(s string) string { return c.api.Scrub(s) }

type config struct {
	base  *url.URL
	doc   []string
	token string
}

func parse(sys *nhisync.System) (config, error) {
	var cfg config
	raw := strings.TrimSpace(sys.Settings.String(SettingURL))
	if raw == "" {
		return cfg, apiclient.Invalid(sys, "url is required: the OPA server's root, such as http://127.0.0.1:8181")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, apiclient.Invalid(sys, "url %q is not an http:// or https:// URL of the OPA server's root", raw)
	}
	if u.User != nil {
		return cfg, apiclient.Invalid(sys, "url must not hold credentials; use token")
	}
	cfg.base = u.JoinPath("v1", "data")
	p := strings.Trim(strings.TrimSpace(sys.Settings.String(SettingPath)), "/")
	if p == "" {
		return cfg, apiclient.Invalid(sys, "path is required: the data document under /v1/data holding the records, such as nhi/accounts")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return cfg, apiclient.Invalid(sys, "path %q has an empty or relative segment; write it as a/b/c", p)
		}
		cfg.doc = append(cfg.doc, seg)
	}
	if _, ok := sys.Settings[SettingToken]; ok {
		if cfg.token, err = apiclient.Secret(sys, SettingToken); err != nil {
			return cfg, err
		}
		if cfg.token == "" {
			return cfg, apiclient.Invalid(sys, "token is empty; set the variable it names or remove the setting")
		}
	}
	for _, m := range sys.Fields {
		if _, err := native.ParsePath(m.Name); err != nil {
			return cfg, apiclient.Invalid(sys, "field %s: %v", m.Field, nhisync.ErrorMessage(err))
		}
	}
	return cfg, nil
}

// Validate checks settings without reaching OPA.
func Validate(sys *nhisync.System, _ *nhisync.Kind) error {
	_, err := parse(sys)
	return err
}

// Open returns a connector; it does not reach OPA (Check does). Errors
// are *nhisync.Error EINVALID for bad settings.
func Open(_ context.Context, sys *nhisync.System, kind *nhisync.Kind) (nhisync.Connector, error) {
	return New(sys, kind)
}

// New is Open returning the concrete type.
func New(sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	cfg, err := parse(sys)
	if err != nil {
		return nil, err
	}
	api, err := apiclient.New(sys, cfg.base, apiclient.Auth{Token: cfg.token})
	if err != nil {
		return nil, err
	}
	c := &Connector{sys: sys, kind: kind, api: api, doc: cfg.doc}
	for _, m := range sys.Fields {
		p, _ := native.ParsePath(m.Name)
		c.paths = append(c.paths, p)
	}
	if sys.ID != "" && fieldOf(sys, sys.ID) == nil {
		c.idPath, _ = native.ParsePath(sys.ID)
	}
	return c, nil
}

func fieldOf(sys *nhisync.System, name string) *nhisync.Mapping {
	for _, m := range sys.Fields {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Client returns the HTTP client (tests inject sleeps through it).
func (c *Connector) Client() *apiclient.Client { return c.api }

// Close releases nothing: every call is one HTTP request.
func (c *Connector) Close() error { return nil }

func (c *Connector) docPath() string { return strings.Join(c.doc, "/") }

// read returns the document: the object keyed by id. An undefined
// document is empty when the system may provision records, and an error
// otherwise (a wrong path must not read as "every record vanished").
func (c *Connector) read(ctx context.Context) (map[string]any, error) {
	res, err := c.api.Do(ctx, apiclient.Request{Method: http.MethodGet, Path: escapePath(c.doc)})
	if err != nil {
		return nil, err
	}
	if res.Status != http.StatusOK {
		return nil, c.api.Errorf(nhisync.EUNAVAIL, "read the document %s: %s", c.docPath(), c.api.Detail(res))
	}
	var body struct {
		Result any `json:"result"`
	}
	if err := res.JSON(&body); err != nil {
		return nil, c.api.Errorf(nhisync.EUNAVAIL, "read the document %s: the answer is not JSON", c.docPath())
	}
	switch doc := body.Result.(type) {
	case nil:
		if c.sys.Provision {
			return map[string]any{}, nil
		}
		return nil, c.api.Errorf(nhisync.EINVALID, "the document %s is undefined in OPA; check path, or create it (PUT {} to /v1/data/%s), or set provision: true to start from an empty one", c.docPath(), c.docPath())
	case map[string]any:
		return doc, nil
	default:
		return nil, c.api.Errorf(nhisync.EINVALID, "the document %s is not an object keyed by id (it is %s); point path at one", c.docPath(), kindOf(doc))
	}
}

func kindOf(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	}
	return "a number"
}

// Snapshot streams every record of the document, by id in sorted order.
// A record that is not an object cannot be decoded: it is emitted with
// every field Malformed, so the engine quarantines it by system and id
// and the rest of the read goes on.
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	doc, err := c.read(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(doc))
	for id := range doc {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.sys.Fields))}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.TrimSpace(id) == "" {
			continue
		}
		if err := c.observe(id, doc[id], &obs); err != nil {
			return err
		}
		if err := emit(obs); err != nil {
			return err
		}
	}
	return nil
}

func (c *Connector) observe(id string, v any, obs *nhisync.Observation) error {
	obs.ID = id
	rec, ok := v.(map[string]any)
	for i, m := range c.sys.Fields {
		switch {
		case !m.Direction.Reads():
			obs.Values[i] = nhisync.Value{}
		case !ok:
			obs.Values[i] = nhisync.Malformed("the record cannot be decoded: it is " + kindOf(v) + ", not an object")
		default:
			x, _ := c.paths[i].Get(rec)
			val, err := native.Decode(x, m)
			if err != nil {
				return c.api.Errorf(nhisync.EINVALID, "record %s: %s", id, nhisync.ErrorMessage(err))
			}
			obs.Values[i] = val
		}
	}
	return nil
}

// Check reads the document: OPA answers, accepts the token, and path
// holds an object keyed by id.
func (c *Connector) Check(ctx context.Context) error {
	_, err := c.read(ctx)
	return err
}

// Capabilities says what OPA offers: no change cursor (every read is a
// snapshot) and no conditional write (read-compare-write).
func (c *Connector) Capabilities(context.Context) nhisync.Capabilities {
	return nhisync.Capabilities{
		IncrementalNote: "OPA's data API has no change feed; every pass reads the document",
		ConditionalNote: "OPA has no compare-and-swap: read, compare, then one atomic PATCH per batch",
	}
}

// ptr escapes one JSON Pointer segment (RFC 6901).
func ptr(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// patchOp is one JSON Patch operation of OPA's data API.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// matchKey returns rec's match fields, lower-cased and trimmed, as one
// key (false when one is missing), to find a record a create made.
func (c *Connector) matchKey(rec map[string]any) (string, bool) {
	var parts []string
	for _, f := range c.kind.Match {
		m := c.sys.Mapping(f)
		if m == nil {
			return "", false
		}
		i := slices.Index(c.sys.Fields, m)
		x, _ := c.paths[i].Get(rec)
		v, err := native.Decode(x, m)
		if err != nil || v.IsZero() {
			return "", false
		}
		parts = append(parts, strings.ToLower(strings.TrimSpace(v.Text())))
	}
	return strings.Join(parts, "\x00"), len(parts) > 0
}

func apiclientRequest(method string, segs []string, h http.Header, body any, ct string) apiclient.Request {
	return apiclient.Request{Method: method, Path: escapePath(segs), Header: h, Body: body, ContentType: ct}
}
