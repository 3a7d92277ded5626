// Package ldap owns the `ldap` connector: systems that are entries of an
// LDAP directory (OpenLDAP, Active Directory) under a base DN. It reads
// them with paged searches (RFC 2696), reads only what changed through an
// RFC 4533 refreshOnly content sync where the server offers syncprov and
// by modifyTimestamp otherwise, and writes with conditional modifies: each
// changed attribute's old values are deleted and the new ones added in one
// Modify (an attribute that held nothing is asserted absent with the RFC
// 4528 assertion control), so a concurrent change makes the modify fail
// and nothing a person changed is overwritten blind.
//
// Settings (SPEC §5): `url` (ldap:// or ldaps://, required), `start_tls`
// (upgrade an ldap:// connection, default false), `ca_file` (PEM CA to
// trust, relative to the config's folder; default the system's roots),
// `bind_dn` (default anonymous), `bind_password` (required with bind_dn,
// and only as env:VAR or file:PATH: a password written in the config, or
// expanded into it, is refused), `base_dn` (required), `filter` (default
// (objectClass=*)), `scope` (sub, one or base; default sub), `page_size`
// (default 500), `timeout` (each request, default 30s) and `create`
// (`{ object_classes: […], rdn: ATTR }`, needed with provision: true). The
// common `id` is the attribute holding each entry's stable id (default
// entryUUID; objectGUID on Active Directory).
//
// A mapping `{ name: owner, ref: person }` holds DNs: a DN reads as the
// referenced entry's `ref_attribute` (a setting, default uid; read from the
// DN itself when it is the DN's RDN, as in uid=alice,ou=people,…, else
// from the entry), which is the match key of the referenced person record,
// and a key writes back as the DN of the one entry under `ref_base_dn`
// (default the directory suffix: base_dn's dc= components) whose
// ref_attribute equals it. A key read from the RDN is taken as it is; a DN
// looked up that names no entry reads as the DN itself. Either way a key
// no person record has is caught by the engine's reference check. Multi-valued attributes map
// to sets; a time field is written as GeneralizedTime. Every value put in
// a filter is escaped as RFC 4515 says; every value put in a DN as RFC 4514
// says.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/nhisync/nhisync"
)

// Setting names of the ldap connector.
const (
	SettingURL          = "url"
	SettingStartTLS     = "start_tls"
	SettingCAFile       = "ca_file"
	SettingBindDN       = "bind_dn"
	SettingBindPassword = "bind_password"
	SettingBaseDN       = "base_dn"
	SettingFilter       = "filter"
	SettingScope        = "scope"
	SettingPageSize     = "page_size"
	SettingTimeout      = "timeout"
	SettingCreate       = "create"
	SettingRefBaseDN    = "ref_base_dn"
	SettingRefAttribute = "ref_attribute"
)

// Defaults.
const (
	DefaultID       = "entryUUID"
	DefaultFilter   = "(objectClass=*)"
	DefaultPageSize = 500
	DefaultTimeout  = 30 * time.Second
)

// OIDs of what the connector looks for in the root DSE or sends.
const (
	oidSyncRequest = "1.3.6.1.4.1.4203.1.9.1.1" // RFC 4533
	oidAssertion   = "1.3.6.1.1.12"             // RFC 4528
)

func init() {
	nhisync.RegisterDriver("ldap", nhisync.Driver{
		Settings: []string{SettingURL, SettingStartTLS, SettingCAFile, SettingBindDN, SettingBindPassword,
			SettingBaseDN, SettingFilter, SettingScope, SettingPageSize, SettingTimeout, SettingCreate,
			SettingRefBaseDN, SettingRefAttribute},
		Validate: Validate,
		Open:     Open,
	})
}

var (
	_ nhisync.Connector = (*Connector)(nil)
	_ nhisync.Checker   = (*Connector)(nil)
	_ nhisync.Scrubber  = (*Connector)(nil)
	_ nhisync.Changer   = (*Connector)(nil)
)

// config is a system's parsed settings.
type config struct {
	url        *url.URL
	startTLS   bool
	tls        *tls.Config
	bindDN     string
	password   string
	baseDN     string
	filter     string
	scope      int
	pageSize   int
	timeout    time.Duration
	id         string
	objClasses []string
	rdn        string
	refBase    string
	refAttr    string
}

// Connector reaches the entries of one directory subtree. It is safe for
// concurrent use.
type Connector struct {
	sys  *nhisync.System
	kind *nhisync.Kind
	cfg  config
	// attrs are the attributes a read asks for: id, every mapped one,
	// modifyTimestamp and modifiersName.
	attrs []string

	mu   sync.Mutex
	conn *ldap.Conn
	// sync: the server offers RFC 4533 content sync (for base_dn: a
	// database without syncprov refuses it, and sync is turned off).
	sync atomic.Bool
	refs *refCache
}

func bad(sys *nhisync.System, format string, args ...any) error {
	return nhisync.Errorf(nhisync.EINVALID, "system %s: %s", sys.Name, fmt.Sprintf(format, args...))
}

// Validate checks an ldap system's settings without reaching the
// directory. It returns *nhisync.Error EINVALID naming the setting at
// fault; messages never hold the password.
func Validate(sys *nhisync.System, kind *nhisync.Kind) error {
	_, err := parse(sys)
	return err
}

func parse(sys *nhisync.System) (config, error) {
	s := sys.Settings
	var c config
	raw := strings.TrimSpace(s.String(SettingURL))
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return c, bad(sys, "url %q: give ldap://HOST[:PORT] or ldaps://HOST[:PORT]", raw)
	}
	if u.User != nil {
		return c, bad(sys, "url: put no credentials in the URL; use bind_dn and bind_password")
	}
	c.url = u
	c.startTLS = s.Bool(SettingStartTLS)
	if c.startTLS && u.Scheme == "ldaps" {
		return c, bad(sys, "start_tls upgrades an ldap:// connection; with ldaps:// remove it")
	}
	c.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if f := s.String(SettingCAFile); f != "" {
		if !filepath.IsAbs(f) {
			f = filepath.Join(sys.BaseDir, f)
		}
		pemBytes, err := os.ReadFile(f)
		if err != nil {
			return c, bad(sys, "ca_file %s cannot be read: %v", f, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return c, bad(sys, "ca_file %s holds no PEM certificate", f)
		}
		c.tls.RootCAs = pool
	}
	c.bindDN = strings.TrimSpace(s.String(SettingBindDN))
	if c.bindDN != "" {
		if _, err := ldap.ParseDN(c.bindDN); err != nil {
			return c, bad(sys, "bind_dn %q is not a DN: %v", c.bindDN, err)
		}
		pw, err := password(sys, s.String(SettingBindPassword))
		if err != nil {
			return c, err
		}
		c.password = pw
	} else if s.String(SettingBindPassword) != "" {
		return c, bad(sys, "bind_password without bind_dn: set bind_dn too, or remove bind_password for an anonymous bind")
	}
	c.baseDN = strings.TrimSpace(s.String(SettingBaseDN))
	if c.baseDN == "" {
		return c, bad(sys, "set base_dn: the DN under which the entries live (e.g. ou=serviceaccounts,dc=example,dc=com)")
	}
	if _, err := ldap.ParseDN(c.baseDN); err != nil {
		return c, bad(sys, "base_dn %q is not a DN: %v", c.baseDN, err)
	}
	c.filter = strings.TrimSpace(s.String(SettingFilter))
	if c.filter == "" {
		c.filter = DefaultFilter
	}
	if !strings.HasPrefix(c.filter, "(") {
		c.filter = "(" + c.filter + ")"
	}
	if _, err := ldap.CompileFilter(c.filter); err != nil {
		return c, bad(sys, "filter %q is not an LDAP filter (RFC 4515): %v", c.filter, err)
	}
	switch sc := strings.ToLower(s.String(SettingScope)); sc {
	case "", "sub", "subtree":
		c.scope = ldap.ScopeWholeSubtree
	case "one", "onelevel", "single":
		c.scope = ldap.ScopeSingleLevel
	case "base":
		c.scope = ldap.ScopeBaseObject
	default:
		return c, bad(sys, "scope %q: use sub, one or base", sc)
	}
	c.pageSize = s.Int(SettingPageSize, DefaultPageSize)
	if c.pageSize < 1 || c.pageSize > 100000 {
		return c, bad(sys, "page_size %q: give a number of entries from 1 to 100000 (default %d)", s.String(SettingPageSize), DefaultPageSize)
	}
	c.timeout = DefaultTimeout
	if v := s.String(SettingTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, bad(sys, "timeout %q: give a duration such as 30s", v)
		}
		c.timeout = d
	}
	c.id = strings.TrimSpace(sys.ID)
	if c.id == "" {
		c.id = DefaultID
	}
	if cr := s.Map(SettingCreate); cr != nil {
		for k := range cr {
			if k != "object_classes" && k != "rdn" {
				return c, bad(sys, "create.%s is not a setting; create takes object_classes and rdn", k)
			}
		}
		switch oc := cr["object_classes"].(type) {
		case []any:
			for _, o := range oc {
				if s, ok := o.(string); ok && s != "" {
					c.objClasses = append(c.objClasses, s)
				}
			}
		case string:
			c.objClasses = []string{oc}
		}
		c.rdn = cr.String("rdn")
		if len(c.objClasses) == 0 || c.rdn == "" {
			return c, bad(sys, "create needs object_classes (a list) and rdn (the attribute naming new entries)")
		}
		if sys.Mapping(fieldOf(sys, c.rdn)) == nil {
			return c, bad(sys, "create.rdn %q is not a mapped attribute; new entries are named by a mapped one", c.rdn)
		}
	} else if s[SettingCreate] != nil {
		return c, bad(sys, "create must be a mapping: { object_classes: [...], rdn: ATTR }")
	}
	if sys.Provision && c.rdn == "" {
		return c, bad(sys, "provision: true needs create: { object_classes: [...], rdn: ATTR } to make entries")
	}
	c.refBase = strings.TrimSpace(s.String(SettingRefBaseDN))
	if c.refBase == "" {
		c.refBase = suffixOf(c.baseDN)
	} else if _, err := ldap.ParseDN(c.refBase); err != nil {
		return c, bad(sys, "ref_base_dn %q is not a DN: %v", c.refBase, err)
	}
	c.refAttr = strings.TrimSpace(s.String(SettingRefAttribute))
	if c.refAttr == "" {
		c.refAttr = "uid"
	}
	for _, m := range sys.Fields {
		if m.Ref != "" && m.Type != nhisync.TypeRef && m.Type != nhisync.TypeRefs && m.Type != nhisync.TypeString && !m.Type.IsSet() {
			return c, bad(sys, "field %s maps DN attribute %s (ref: %s) but is of type %s; use a ref, refs, string or set field", m.Field, m.Name, m.Ref, m.Type)
		}
	}
	return c, nil
}

// fieldOf returns the canonical field mapped to attribute attr ("" when
// none is).
func fieldOf(sys *nhisync.System, attr string) string {
	for _, m := range sys.Fields {
		if strings.EqualFold(m.Name, attr) {
			return m.Field
		}
	}
	return ""
}

// password reads bind_password: env:VAR or file:PATH only.
func password(sys *nhisync.System, v string) (string, error) {
	kind, ref, _ := strings.Cut(v, ":")
	switch kind {
	case "env":
		if ref == "" {
			break
		}
		pw, ok := os.LookupEnv(ref)
		if !ok || pw == "" {
			return "", bad(sys, "bind_password: the environment variable %s is not set", ref)
		}
		return pw, nil
	case "file":
		if ref == "" {
			break
		}
		if !filepath.IsAbs(ref) {
			ref = filepath.Join(sys.BaseDir, ref)
		}
		b, err := os.ReadFile(ref)
		if err != nil {
			return "", bad(sys, "bind_password: the file %s cannot be read (%v)", ref, os.ErrNotExist)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", bad(sys, "bind_password: the file %s is empty", ref)
		}
		return pw, nil
	}
	return "", bad(sys, "bind_password must say where the password is: env:VARIABLE or file:PATH (a password written in the config, or expanded into it from ${VAR}, is refused so it never sits in the config)")
}

// suffixOf returns the trailing dc= components of dn (dn itself when it
// has none).
func suffixOf(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return dn
	}
	for i, rdn := range parsed.RDNs {
		if len(rdn.Attributes) == 1 && strings.EqualFold(rdn.Attributes[0].Type, "dc") {
			return (&ldap.DN{RDNs: parsed.RDNs[i:]}).String()
		}
	}
	return dn
}

// Open connects and binds, and reads the root DSE to learn whether the
// server offers content sync. Errors are *nhisync.Error: EINVALID for bad
// settings and a refused bind, EUNAVAIL when the server cannot be
// reached.
func Open(ctx context.Context, sys *nhisync.System, kind *nhisync.Kind) (nhisync.Connector, error) {
	return New(ctx, sys, kind)
}

// New is Open returning the concrete type.
func New(ctx context.Context, sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	cfg, err := parse(sys)
	if err != nil {
		return nil, err
	}
	c := &Connector{sys: sys, kind: kind, cfg: cfg, refs: newRefCache()}
	c.attrs = []string{cfg.id, "modifyTimestamp", "modifiersName"}
	for _, m := range sys.Fields {
		c.attrs = append(c.attrs, m.Name)
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	c.sync.Store(c.offersSync(conn))
	return c, nil
}

func (c *Connector) errorf(code, format string, args ...any) *nhisync.Error {
	return &nhisync.Error{Code: code, Message: fmt.Sprintf("system %s: ", c.sys.Name) + fmt.Sprintf(format, args...)}
}

func (c *Connector) unavail(err error, format string, args ...any) error {
	e := c.errorf(nhisync.EUNAVAIL, format+": %s", append(args, c.scrub(err))...)
	e.Err = fmt.Errorf("%s", c.scrub(err))
	return e
}

// scrub keeps the bind password out of an error's text.
func (c *Connector) scrub(err error) string {
	if err == nil {
		return ""
	}
	return c.Scrub(err.Error())
}

// Scrub implements nhisync.Scrubber: s without the bind password.
func (c *Connector) Scrub(s string) string {
	if c.cfg.password != "" {
		s = strings.ReplaceAll(s, c.cfg.password, "xxxxx")
	}
	return s
}

// dial connects (TLS as configured) and binds.
func (c *Connector) dial(ctx context.Context) (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: c.cfg.timeout}
	conn, err := ldap.DialURL(c.cfg.url.String(), ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(c.cfg.tls))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.unavail(err, "cannot reach the directory at %s", c.cfg.url.Redacted())
	}
	conn.SetTimeout(c.cfg.timeout)
	if c.cfg.startTLS {
		if err := conn.StartTLS(c.cfg.tls); err != nil {
			conn.Close()
			return nil, c.unavail(err, "StartTLS with %s failed (check ca_file and the server's certificate)", c.cfg.url.Redacted())
		}
	}
	if c.cfg.bindDN != "" {
		if err := conn.Bind(c.cfg.bindDN, c.cfg.password); err != nil {
			conn.Close()
			if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				return nil, c.errorf(nhisync.EINVALID, "the directory refused the bind as %s: invalid credentials; check bind_dn and bind_password", c.cfg.bindDN)
			}
			return nil, c.unavail(err, "cannot bind as %s", c.cfg.bindDN)
		}
	}
	return conn, nil
}

// offersSync reads the root DSE's supportedControl.
func (c *Connector) offersSync(conn *ldap.Conn) bool {
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"supportedControl"}, nil))
	if err != nil || len(res.Entries) == 0 {
		return false
	}
	return slices.Contains(res.Entries[0].GetAttributeValues("supportedControl"), oidSyncRequest)
}

// client returns the connection, redialling when it was lost.
func (c *Connector) client(ctx context.Context) (*ldap.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !c.conn.IsClosing() {
		return c.conn, nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	return conn, nil
}

// Check reads the base entry. It returns *nhisync.Error EUNAVAIL when the
// directory cannot be reached and EINVALID when base_dn is not there.
func (c *Connector) Check(ctx context.Context) error {
	conn, err := c.client(ctx)
	if err != nil {
		return err
	}
	_, err = conn.Search(ldap.NewSearchRequest(c.cfg.baseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return c.errorf(nhisync.EINVALID, "base_dn %s does not exist in the directory", c.cfg.baseDN)
	}
	if err != nil {
		return c.unavail(err, "cannot read base_dn %s", c.cfg.baseDN)
	}
	return nil
}

// Close unbinds and closes the connection.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	return nil
}
