// Package http owns the `http` connector: a generic JSON REST API
// (catalogs, CMDB APIs, ticketing) described in the config rather than in
// code. It lists records page by page (page/size, a cursor or next link in
// the body, or the Link header), reads one record with `get`, writes with
// `update` (method, URL template and body template), creates with `create`
// when provision: true, and reads only what changed with `cursor`. A write
// is conditional: nhisync GETs the record, checks it still holds the old
// values, and sends the update with If-Match when the API gave an ETag (a
// 412 makes the write stale); without ETags the window between the GET
// and the update is the API's (check --connect says which).
//
// Inbound webhooks (`webhook: {path, secret}`) are served on `nhisync
// serve`'s address: a POST signed with HMAC-SHA256 over its timestamp and
// raw body (checked in constant time, within a timestamp window, once, up
// to a size limit) makes the service read the system again. See
// webhook.go.
//
// Calls go through connector/apiclient: a timeout on every call, 429 and
// 502/503/504 tried again with backoff honouring Retry-After, 401/403 a
// clear error, and no credential in any error.
package http

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/apiclient"
	"github.com/nhisync/nhisync/connector/native"
)

// Setting names (SPEC §5).
const (
	SettingURL     = "url"
	SettingAuth    = "auth"
	SettingList    = "list"
	SettingGet     = "get"
	SettingUpdate  = "update"
	SettingCreate  = "create"
	SettingCursor  = "cursor"
	SettingWebhook = "webhook"
)

// Paging styles of list.paging.
const (
	PagingNone   = "none"
	PagingPage   = "page"
	PagingCursor = "cursor"
	PagingLink   = "link"
)

// Body styles of update.body and create.body (anything else is a
// text/template).
const (
	BodyMerge = "merge" // a JSON object of the changed native paths (null clears)
	BodyFull  = "full"  // the record as GET returned it, changed
)

// maxPages bounds one listing, against an API whose next link loops.
const maxPages = 1_000_000

func init() {
	nhisync.RegisterDriver("http", nhisync.Driver{
		Settings: []string{SettingURL, SettingAuth, SettingList, SettingGet, SettingUpdate, SettingCreate,
			SettingCursor, SettingWebhook, apiclient.SettingTimeout, apiclient.SettingRetries},
		Validate: Validate,
		Open:     Open,
	})
}

// Open returns the connector for sys: a *Connector, wrapped as a
// *CursorConnector when `cursor` is set and as a HookConnector or
// HookCursorConnector when `webhook` is set, so the engine and the service
// find exactly the capabilities configured.
func Open(_ context.Context, sys *nhisync.System, kind *nhisync.Kind) (nhisync.Connector, error) {
	c, err := New(sys, kind)
	if err != nil {
		return nil, err
	}
	switch {
	case c.cursor != nil && c.hook != nil:
		return HookCursorConnector{&CursorConnector{c}}, nil
	case c.cursor != nil:
		return &CursorConnector{c}, nil
	case c.hook != nil:
		return HookConnector{c}, nil
	}
	return c, nil
}

var (
	_ nhisync.Connector        = (*Connector)(nil)
	_ nhisync.Checker          = (*Connector)(nil)
	_ nhisync.Scrubber         = (*Connector)(nil)
	_ nhisync.CapabilityTeller = (*Connector)(nil)
	_ nhisync.Changer          = (*CursorConnector)(nil)
)

// Connector reaches one JSON REST API.
type Connector struct {
	sys  *nhisync.System
	kind *nhisync.Kind
	api  *apiclient.Client
	list listCfg
	get  string
	upd  writeCfg
	crt  writeCfg
	// cursor is set when the API filters its list by a change cursor.
	cursor *cursorCfg
	hook   *hookCfg
	fields []field
	id     native.Path
	// Rand makes webhook replay keys unpredictable; Now reads the clock
	// for the webhook's timestamp window.
	Rand io.Reader
	Now  func() time.Time

	mu sync.Mutex
	// etags records whether the API gave an ETag on its last GET.
	etags, sawGet bool
	hookState
}

// Scrub implements nhisync.Scrubber: s without the API's credentials.
func (c *Connector) Scrub(s string) string { return c.api.Scrub(s) }

// CursorConnector is a Connector whose API filters its list by a change
// cursor (`cursor: {param, field}`).
type CursorConnector struct{ *Connector }

type field struct {
	m    *nhisync.Mapping
	path native.Path
}

type listCfg struct {
	path      string
	query     url.Values
	items     native.Path // nil: the body is the array
	paging    string
	pageParam string
	sizeParam string
	size      int
	firstPage int
	curParam  string
	next      native.Path
}

type writeCfg struct {
	method, path, body, contentType string
	tmpl                            *template.Template
}

type cursorCfg struct {
	param string
	field native.Path
}

// Validate checks an http system's settings without calling the API. It
// returns *nhisync.Error EINVALID naming the setting.
func Validate(sys *nhisync.System, kind *nhisync.Kind) error {
	_, err := New(sys, kind)
	return err
}

func sub(s nhisync.Settings, key string) (nhisync.Settings, bool, error) {
	switch v := s[key].(type) {
	case nil:
		return nhisync.Settings{}, false, nil
	case map[string]any:
		return nhisync.Settings(v), true, nil
	case nhisync.Settings:
		return v, true, nil
	}
	return nil, false, fmt.Errorf("%s must be a mapping", key)
}

func only(s nhisync.Settings, what string, keys ...string) error {
	for k := range s {
		ok := false
		for _, x := range keys {
			ok = ok || k == x
		}
		if !ok {
			return fmt.Errorf("%s: unknown key %q (it takes %s)", what, k, strings.Join(keys, ", "))
		}
	}
	return nil
}

// New returns a connector for sys without calling the API.
func New(sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	bad := func(format string, args ...any) error { return apiclient.Invalid(sys, format, args...) }
	c := &Connector{sys: sys, kind: kind, Rand: rand.Reader, Now: time.Now}
	raw := strings.TrimSpace(sys.Settings.String(SettingURL))
	base, err := url.Parse(raw)
	if raw == "" || err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, bad("url must be the API's base, an http:// or https:// URL (got %q)", raw)
	}
	if base.User != nil {
		return nil, bad("url must not hold credentials; use auth: {token: …} or auth: {username, password}")
	}
	auth, header, err := c.auth()
	if err != nil {
		return nil, err
	}
	if c.api, err = apiclient.New(sys, base, auth); err != nil {
		return nil, err
	}
	if header != "" {
		// An API key in a header of its own: move the bearer token there.
		v := strings.TrimPrefix(c.api.Header.Get("Authorization"), "Bearer ")
		c.api.Header.Del("Authorization")
		c.api.Header.Set(header, v)
	}
	if err := c.configure(); err != nil {
		return nil, bad("%v", err)
	}
	idName := sys.ID
	if idName == "" {
		idName = "id"
	}
	if c.id, err = native.ParsePath(idName); err != nil {
		return nil, bad("id: %s", nhisync.ErrorMessage(err))
	}
	for _, m := range sys.Fields {
		p, err := native.ParsePath(m.Name)
		if err != nil {
			return nil, bad("field %s: %s", m.Field, nhisync.ErrorMessage(err))
		}
		c.fields = append(c.fields, field{m: m, path: p})
	}
	return c, nil
}

// auth reads auth: {token} or {username, password}, and header (the
// header carrying the token instead of Authorization: Bearer).
func (c *Connector) auth() (apiclient.Auth, string, error) {
	var a apiclient.Auth
	s, ok, err := sub(c.sys.Settings, SettingAuth)
	if err != nil {
		return a, "", apiclient.Invalid(c.sys, "auth must be a mapping: auth: {token: ${API_TOKEN}} or auth: {username: …, password: ${API_PASSWORD}}")
	}
	if !ok {
		return a, "", nil
	}
	if err := only(s, "auth", "token", "username", "password", "header"); err != nil {
		return a, "", apiclient.Invalid(c.sys, "%v", err)
	}
	as := &nhisync.System{Name: c.sys.Name, Pos: c.sys.Pos, BaseDir: c.sys.BaseDir, Settings: s}
	secret := func(key string) (string, error) {
		v, err := apiclient.Secret(as, key)
		if err != nil {
			return "", err
		}
		if v == "" {
			return "", apiclient.Invalid(c.sys, "auth.%s is empty; set the variable it names or remove the setting", key)
		}
		return v, nil
	}
	switch {
	case s.String("token") != "" && s.String("username") != "":
		return a, "", apiclient.Invalid(c.sys, "auth: set token, or username and password, not both")
	case s["token"] != nil:
		a.Token, err = secret("token")
	case s["username"] != nil || s["password"] != nil:
		a.Username = s.String("username")
		if a.Username == "" {
			return a, "", apiclient.Invalid(c.sys, "auth: username and password go together; set both")
		}
		a.Password, err = secret("password")
	}
	header := strings.TrimSpace(s.String("header"))
	if header != "" && a.Token == "" {
		return a, "", apiclient.Invalid(c.sys, "auth.header names the header carrying auth.token; set token too")
	}
	return a, header, err
}

func (c *Connector) configure() error {
	l, ok, err := sub(c.sys.Settings, SettingList)
	if err != nil || !ok {
		return fmt.Errorf("list is required: list: {path: /accounts, items: data, paging: page}")
	}
	if err := only(l, "list", "path", "query", "items", "paging", "page_param", "size_param", "size", "first_page", "cursor_param", "next"); err != nil {
		return err
	}
	c.list = listCfg{path: strings.TrimSpace(l.String("path")), paging: strings.TrimSpace(l.String("paging")),
		pageParam: "page", sizeParam: "per_page", size: l.Int("size", 100), firstPage: l.Int("first_page", 1), curParam: "cursor", query: url.Values{}}
	if c.list.path == "" {
		return fmt.Errorf("list.path is required: the path of the collection, such as /accounts")
	}
	if q, ok, err := sub(l, "query"); err != nil {
		return fmt.Errorf("list.query must be a mapping of query parameters")
	} else if ok {
		for k := range q {
			c.list.query.Set(k, q.String(k))
		}
	}
	if it := strings.TrimSpace(l.String("items")); it != "" {
		if c.list.items, err = native.ParsePath(it); err != nil {
			return fmt.Errorf("list.items: %s", nhisync.ErrorMessage(err))
		}
	}
	if v := l.String("page_param"); v != "" {
		c.list.pageParam = v
	}
	if v := l.String("size_param"); v != "" {
		c.list.sizeParam = v
	}
	if v := l.String("cursor_param"); v != "" {
		c.list.curParam = v
	}
	switch c.list.paging {
	case "":
		c.list.paging = PagingNone
	case PagingNone, PagingLink:
	case PagingPage:
		if c.list.size < 1 || c.list.size > 100000 {
			return fmt.Errorf("list.size must be a whole number from 1 to 100000")
		}
	case PagingCursor:
		nx := strings.TrimSpace(l.String("next"))
		if nx == "" {
			return fmt.Errorf("list.paging: cursor needs list.next: the path in the body to the next cursor or next page's URL (e.g. meta.next)")
		}
		if c.list.next, err = native.ParsePath(nx); err != nil {
			return fmt.Errorf("list.next: %s", nhisync.ErrorMessage(err))
		}
	default:
		return fmt.Errorf("list.paging %q: use none, page (page/size), cursor (a cursor or next link in the body) or link (the Link header)", c.list.paging)
	}
	c.get = strings.TrimSpace(c.sys.Settings.String(SettingGet))
	if c.get == "" {
		c.get = strings.TrimRight(c.list.path, "/") + "/{id}"
	}
	if !strings.Contains(c.get, "{id}") {
		return fmt.Errorf("get %q must hold {id}, where the record's id goes", c.get)
	}
	if c.upd, err = writeSetting(c.sys.Settings, SettingUpdate, nethttp.MethodPatch, c.get, BodyMerge); err != nil {
		return err
	}
	if !strings.Contains(c.upd.path, "{id}") {
		return fmt.Errorf("update.path %q must hold {id}, where the record's id goes", c.upd.path)
	}
	if c.crt, err = writeSetting(c.sys.Settings, SettingCreate, nethttp.MethodPost, c.list.path, BodyMerge); err != nil {
		return err
	}
	if cs, ok, err := sub(c.sys.Settings, SettingCursor); err != nil {
		return fmt.Errorf("cursor must be a mapping: cursor: {param: updated_since, field: updated_at}")
	} else if ok {
		if err := only(cs, "cursor", "param", "field"); err != nil {
			return err
		}
		cc := &cursorCfg{param: strings.TrimSpace(cs.String("param"))}
		if cc.param == "" || cs.String("field") == "" {
			return fmt.Errorf("cursor needs param (the list's query parameter taking the cursor) and field (the record's updated-at field)")
		}
		if cc.field, err = native.ParsePath(cs.String("field")); err != nil {
			return fmt.Errorf("cursor.field: %s", nhisync.ErrorMessage(err))
		}
		c.cursor = cc
	}
	return c.configureHook()
}

func writeSetting(s nhisync.Settings, key, method, path, body string) (writeCfg, error) {
	w := writeCfg{method: method, path: path, body: body}
	ws, _, err := sub(s, key)
	if err != nil {
		return w, fmt.Errorf("%s must be a mapping: %s: {method: PATCH, path: /accounts/{id}, body: merge}", key, key)
	}
	if err := only(ws, key, "method", "path", "body", "content_type"); err != nil {
		return w, err
	}
	if m := strings.ToUpper(strings.TrimSpace(ws.String("method"))); m != "" {
		switch m {
		case nethttp.MethodPatch, nethttp.MethodPut, nethttp.MethodPost:
		default:
			return w, fmt.Errorf("%s.method %q: use PATCH, PUT or POST", key, m)
		}
		w.method = m
	}
	if p := strings.TrimSpace(ws.String("path")); p != "" {
		w.path = p
	}
	if b := ws.String("body"); b != "" {
		w.body = b
	}
	w.contentType = strings.TrimSpace(ws.String("content_type"))
	if w.body != BodyMerge && w.body != BodyFull {
		t, err := template.New(key).Funcs(template.FuncMap{"json": jsonText}).Option("missingkey=error").Parse(w.body)
		if err != nil {
			return w, fmt.Errorf("%s.body is not merge, full or a valid template: %v", key, err)
		}
		w.tmpl = t
	}
	return w, nil
}

// itemPath fills {id} of a URL template.
func itemPath(tmpl, id string) string {
	return strings.ReplaceAll(tmpl, "{id}", url.PathEscape(id))
}

// Close releases nothing.
func (c *Connector) Close() error { return nil }

// Check reads the first page of the list (the API answers and takes the
// credentials) and GETs its first record, to learn whether writes can be
// conditional (an ETag).
func (c *Connector) Check(ctx context.Context) error {
	items, _, _, err := c.page(ctx, c.list.path, c.firstQuery(""))
	if err != nil {
		return err
	}
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			v, _ := c.id.Get(m)
			if id, _ := native.Text(v); id != "" {
				rec, _, err := c.fetch(ctx, id)
				if err == nil && rec == nil {
					err = c.errorf(nhisync.EINVALID, "the list holds record %s but GET %s answers 404: fix get (and id) so writes can find records", id, itemPath(c.get, id))
				}
				return err
			}
		}
	}
	return nil
}

// Capabilities says whether reads are incremental (a cursor is set) and
// whether writes are conditional (the API gave an ETag on a GET).
func (c *Connector) Capabilities(context.Context) nhisync.Capabilities {
	c.mu.Lock()
	defer c.mu.Unlock()
	caps := nhisync.Capabilities{Incremental: c.cursor != nil}
	if caps.Incremental {
		caps.IncrementalNote = fmt.Sprintf("list?%s=<the largest %s seen>", c.cursor.param, c.cursor.field)
	} else {
		caps.IncrementalNote = "no cursor setting: every pass reads the whole list"
	}
	switch {
	case !c.sawGet:
		caps.ConditionalNote = "not known until the first write: If-Match when GET returns an ETag"
	case c.etags:
		caps.ConditionalWrites, caps.ConditionalNote = true, "If-Match with the ETag of the GET; a 412 makes the write stale"
	default:
		caps.ConditionalNote = "the API gives no ETag: nhisync GETs, compares and writes, with a window between"
	}
	return caps
}

func (c *Connector) errorf(code, format string, args ...any) *nhisync.Error {
	return c.api.Errorf(code, format, args...)
}
