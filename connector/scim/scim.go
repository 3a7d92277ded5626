// Package scim is the connector for SCIM 2.0 services (RFC 7643/7644):
// identity providers and SaaS applications. A system is one resource type
// (`resource`, default Users) at the SCIM base `url`, optionally narrowed
// by a `filter`. Native names are paths in SPEC §5's syntax; a key holding
// a schema URN names an extension, so
// ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].manager.value
// is the SCIM path urn:…:enterprise:2.0:User:manager.value. A multi-valued
// attribute (emails, groups, entitlements, roles, or one of plain strings)
// is a set of its elements' value.
//
// Reads page through the list with startIndex and count. Incremental
// reads filter on meta.lastModified where the server supports it (the
// cursor is the latest lastModified seen; a record changed at that
// instant is read again); a server that refuses the filter gets a full
// read every time, and Capabilities says so. Writes are PATCH operations
// on the mapped paths only, sent with If-Match carrying the version the
// connector just read (the ETag, or meta.version), so a change made in
// between fails the write as stale (HTTP 412); a server without versions
// leaves the window between that read and the PATCH, which the README
// names. Creates (provision: true) are POSTs.
package scim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/apiclient"
	"github.com/nhisync/nhisync/connector/native"
)

// Setting names (SPEC §5).
const (
	SettingURL      = "url"       // the SCIM base, e.g. https://idp.example.com/scim/v2
	SettingToken    = "token"     // bearer token
	SettingUsername = "username"  // basic authentication, with password
	SettingPassword = "password"  //
	SettingResource = "resource"  // resource endpoint; default Users
	SettingFilter   = "filter"    // a SCIM filter every read adds
	SettingPageSize = "page_size" // count per list page; default 200
)

// DefaultPageSize is the count asked for per list page.
const DefaultPageSize = 200

// Schema URNs.
const (
	urnPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	urnList    = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
)

// coreSchemas is the core schema of the standard resource types, for the
// schemas attribute of a create.
var coreSchemas = map[string]string{
	"users":  "urn:ietf:params:scim:schemas:core:2.0:User",
	"groups": "urn:ietf:params:scim:schemas:core:2.0:Group",
}

// complexMultiValued are the multi-valued attributes of RFC 7643 whose
// elements are objects with a value sub-attribute; a set written to one
// of them that holds nothing yet is written as [{"value": …}].
var complexMultiValued = map[string]bool{
	"emails": true, "phonenumbers": true, "ims": true, "photos": true, "groups": true,
	"entitlements": true, "roles": true, "x509certificates": true, "members": true,
}

func init() {
	nhisync.RegisterDriver("scim", nhisync.Driver{
		Settings: []string{SettingURL, SettingToken, SettingUsername, SettingPassword, SettingResource,
			SettingFilter, SettingPageSize, apiclient.SettingTimeout, apiclient.SettingRetries},
		Validate: Validate,
		Open:     Open,
	})
}

var (
	_ nhisync.Connector        = (*Connector)(nil)
	_ nhisync.Checker          = (*Connector)(nil)
	_ nhisync.Scrubber         = (*Connector)(nil)
	_ nhisync.Changer          = (*Connector)(nil)
	_ nhisync.CapabilityTeller = (*Connector)(nil)
)

type config struct {
	base     *url.URL
	auth     apiclient.Auth
	resource string
	filter   string
	pageSize int
	id       string
}

func parse(sys *nhisync.System) (config, error) {
	var cfg config
	raw := strings.TrimSpace(sys.Settings.String(SettingURL))
	if raw == "" {
		return cfg, apiclient.Invalid(sys, "url is required: the SCIM base, such as https://idp.example.com/scim/v2")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, apiclient.Invalid(sys, "url %q is not an http:// or https:// URL of the SCIM base", raw)
	}
	if u.User != nil {
		return cfg, apiclient.Invalid(sys, "url must not hold credentials; use token, or username and password")
	}
	cfg.base = u
	_, hasToken := sys.Settings[SettingToken]
	_, hasUser := sys.Settings[SettingUsername]
	_, hasPass := sys.Settings[SettingPassword]
	switch {
	case hasToken && (hasUser || hasPass):
		return cfg, apiclient.Invalid(sys, "set token, or username and password, not both")
	case hasUser != hasPass:
		return cfg, apiclient.Invalid(sys, "username and password go together; set both")
	case hasToken:
		if cfg.auth.Token, err = apiclient.Secret(sys, SettingToken); err != nil {
			return cfg, err
		}
		if cfg.auth.Token == "" {
			return cfg, apiclient.Invalid(sys, "token is empty; set the variable it names or remove the setting")
		}
	case hasUser:
		cfg.auth.Username = strings.TrimSpace(sys.Settings.String(SettingUsername))
		if cfg.auth.Password, err = apiclient.Secret(sys, SettingPassword); err != nil {
			return cfg, err
		}
		if cfg.auth.Username == "" || cfg.auth.Password == "" {
			return cfg, apiclient.Invalid(sys, "username and password must not be empty")
		}
	}
	cfg.resource = strings.Trim(strings.TrimSpace(sys.Settings.String(SettingResource)), "/")
	if cfg.resource == "" {
		cfg.resource = "Users"
	}
	if strings.ContainsAny(cfg.resource, "/?#") {
		return cfg, apiclient.Invalid(sys, "resource %q must be one endpoint name, such as Users or Groups", cfg.resource)
	}
	cfg.filter = strings.TrimSpace(sys.Settings.String(SettingFilter))
	cfg.pageSize = DefaultPageSize
	if _, ok := sys.Settings[SettingPageSize]; ok {
		cfg.pageSize = sys.Settings.Int(SettingPageSize, 0)
		if cfg.pageSize < 1 || cfg.pageSize > 10000 {
			return cfg, apiclient.Invalid(sys, "page_size must be a whole number from 1 to 10000")
		}
	}
	cfg.id = sys.ID
	if cfg.id == "" {
		cfg.id = "id"
	}
	if _, err := native.ParsePath(cfg.id); err != nil {
		return cfg, apiclient.Invalid(sys, "id: %s", nhisync.ErrorMessage(err))
	}
	for _, m := range sys.Fields {
		if _, err := native.ParsePath(m.Name); err != nil {
			return cfg, apiclient.Invalid(sys, "field %s: %s", m.Field, nhisync.ErrorMessage(err))
		}
	}
	return cfg, nil
}

// Validate checks settings without reaching the server.
func Validate(sys *nhisync.System, _ *nhisync.Kind) error {
	_, err := parse(sys)
	return err
}

// Connector reaches one SCIM resource type. It is safe for concurrent use.
type Connector struct {
	sys    *nhisync.System
	kind   *nhisync.Kind
	cfg    config
	api    *apiclient.Client
	paths  []native.Path
	idPath native.Path

	mu sync.Mutex
	// incr: 0 not yet probed, 1 the server filters on meta.lastModified,
	// -1 it does not (why in incrWhy).
	incr    int
	incrWhy string
	// versioned: 1 resources carry meta.version (If-Match possible), -1
	// they do not, 0 not known (Check saw none).
	versioned int
}

// Scrub implements nhisync.Scrubber: s without the API's credentials.
func (c *Connector) Scrub(s string) string { return c.api.Scrub(s) }

// Open returns a connector; it does not reach the server (Check does).
// Errors are *nhisync.Error EINVALID for bad settings.
func Open(_ context.Context, sys *nhisync.System, kind *nhisync.Kind) (nhisync.Connector, error) {
	return New(sys, kind)
}

// New is Open returning the concrete type.
func New(sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	cfg, err := parse(sys)
	if err != nil {
		return nil, err
	}
	api, err := apiclient.New(sys, cfg.base, cfg.auth)
	if err != nil {
		return nil, err
	}
	c := &Connector{sys: sys, kind: kind, cfg: cfg, api: api}
	for _, m := range sys.Fields {
		p, _ := native.ParsePath(m.Name)
		c.paths = append(c.paths, p)
	}
	c.idPath, _ = native.ParsePath(cfg.id)
	return c, nil
}

// Client returns the HTTP client (tests inject sleeps through it).
func (c *Connector) Client() *apiclient.Client { return c.api }

// Close releases nothing: every call is one HTTP request.
func (c *Connector) Close() error { return nil }

// scimPath turns a native path into a SCIM attribute path: a leading key
// holding a schema URN is joined to the rest by ":".
func scimPath(p native.Path) string {
	if len(p) > 1 && strings.Contains(p[0], ":") {
		return p[0] + ":" + strings.Join(p[1:], ".")
	}
	return strings.Join(p, ".")
}

// quote writes a SCIM filter string literal (JSON string syntax).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// and joins filter terms, each parenthesised.
func and(terms ...string) string {
	var out []string
	for _, t := range terms {
		if t != "" {
			out = append(out, "("+t+")")
		}
	}
	return strings.Join(out, " and ")
}

// Check lists one resource: the server answers and accepts the
// credentials. It also learns whether incremental reads are possible.
func (c *Connector) Check(ctx context.Context) error {
	q := url.Values{"count": {"1"}}
	if c.cfg.filter != "" {
		q.Set("filter", c.cfg.filter)
	}
	res, err := c.api.Do(ctx, apiclient.Request{Method: http.MethodGet, Path: c.cfg.resource, Query: q})
	if err != nil {
		return err
	}
	if res.Status != http.StatusOK {
		return c.api.Errorf(nhisync.EUNAVAIL, "list %s: %s (check url, resource and filter)", c.cfg.resource, c.api.Detail(res))
	}
	var page listResponse
	if json.Unmarshal(res.Body, &page) == nil && len(page.Resources) > 0 {
		if m, ok := decodeResource(page.Resources[0]); ok {
			c.mu.Lock()
			c.versioned = 1
			if metaVersion(m) == "" {
				c.versioned = -1
			}
			c.mu.Unlock()
		}
	}
	_, err = c.incremental(ctx)
	return err
}

// Capabilities says whether reads are incremental and writes conditional.
func (c *Connector) Capabilities(ctx context.Context) nhisync.Capabilities {
	ok, _ := c.incremental(ctx)
	c.mu.Lock()
	why := c.incrWhy
	c.mu.Unlock()
	c.mu.Lock()
	versioned := c.versioned
	c.mu.Unlock()
	caps := nhisync.Capabilities{ConditionalWrites: versioned >= 0}
	switch versioned {
	case 1:
		caps.ConditionalNote = "PATCH with If-Match on the version just read (resources carry meta.version)"
	case 0:
		caps.ConditionalNote = "PATCH with If-Match when resources carry a version (none listed to look at)"
	default:
		caps.ConditionalNote = "resources carry no meta.version: read, compare, then PATCH; a change made in between can be overwritten"
	}
	if ok {
		caps.Incremental, caps.IncrementalNote = true, `filter meta.lastModified ge "CURSOR"`
	} else {
		caps.IncrementalNote = "falls back to a full read every pass: " + why
	}
	return caps
}

// incremental probes once whether the server filters on
// meta.lastModified.
func (c *Connector) incremental(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.incr != 0 {
		return c.incr > 0, nil
	}
	q := url.Values{"count": {"1"}, "filter": {and(c.cfg.filter, `meta.lastModified gt "1970-01-01T00:00:00Z"`)}}
	res, err := c.api.Do(ctx, apiclient.Request{Method: http.MethodGet, Path: c.cfg.resource, Query: q})
	if err != nil {
		return false, err
	}
	if res.Status == http.StatusOK {
		c.incr = 1
		return true, nil
	}
	c.incr, c.incrWhy = -1, "the server refused a filter on meta.lastModified ("+c.api.Detail(res)+")"
	return false, nil
}

func trim(s string) string { return strings.TrimSpace(s) }
