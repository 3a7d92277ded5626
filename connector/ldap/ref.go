package ldap

import (
	"context"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"

	"github.com/nhisync/nhisync"
)

// refCache remembers DN ↔ key resolutions for one read or one batch of
// writes (it is cleared at the start of each), so a person referenced by
// many entries is looked up once.
type refCache struct {
	mu   sync.Mutex
	keys map[string]string // DN (normalised) → key
	dns  map[string]string // key → DN
}

func newRefCache() *refCache {
	r := &refCache{}
	r.reset()
	return r
}

func (r *refCache) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys, r.dns = map[string]string{}, map[string]string{}
}

func normDN(dn string) string {
	if p, err := ldap.ParseDN(dn); err == nil {
		return strings.ToLower(p.String())
	}
	return strings.ToLower(strings.TrimSpace(dn))
}

// keyOf returns the key of the entry a DN names: its RDN value when the
// RDN is ref_attribute, else ref_attribute read from the entry; the DN
// itself when it names no entry or the entry lacks the attribute.
func (c *Connector) keyOf(ctx context.Context, dn string) (string, error) {
	parsed, err := ldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return dn, nil
	}
	if first := parsed.RDNs[0]; len(first.Attributes) == 1 && strings.EqualFold(first.Attributes[0].Type, c.cfg.refAttr) {
		return first.Attributes[0].Value, nil
	}
	n := normDN(dn)
	c.refs.mu.Lock()
	k, ok := c.refs.keys[n]
	c.refs.mu.Unlock()
	if ok {
		return k, nil
	}
	conn, err := c.client(ctx)
	if err != nil {
		return "", err
	}
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{c.cfg.refAttr}, nil))
	k = dn
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
	case err != nil:
		return "", c.unavail(err, "cannot read the entry %s", dn)
	case len(res.Entries) == 1:
		if v := res.Entries[0].GetEqualFoldAttributeValue(c.cfg.refAttr); v != "" {
			k = v
		}
	}
	c.refs.mu.Lock()
	c.refs.keys[n] = k
	c.refs.mu.Unlock()
	return k, nil
}

// dnOf returns the DN of the one entry under ref_base_dn whose
// ref_attribute is key. It returns *nhisync.Error EINVALID when there is
// none or more than one.
func (c *Connector) dnOf(ctx context.Context, m *nhisync.Mapping, key string) (string, error) {
	c.refs.mu.Lock()
	dn, ok := c.refs.dns[key]
	c.refs.mu.Unlock()
	if ok {
		return dn, nil
	}
	conn, err := c.client(ctx)
	if err != nil {
		return "", err
	}
	filter := "(" + c.cfg.refAttr + "=" + ldap.EscapeFilter(key) + ")"
	res, err := conn.Search(ldap.NewSearchRequest(c.cfg.refBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
		filter, []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return "", c.unavail(err, "cannot look up %s under %s", filter, c.cfg.refBase)
	}
	switch {
	case res == nil || len(res.Entries) == 0:
		return "", c.errorf(nhisync.EINVALID, "field %s (%s, ref: %s): no entry under %s has %s=%s; create it, or set ref_base_dn/ref_attribute", m.Field, m.Name, m.Ref, c.cfg.refBase, c.cfg.refAttr, key)
	case len(res.Entries) > 1:
		return "", c.errorf(nhisync.EINVALID, "field %s (%s, ref: %s): more than one entry under %s has %s=%s", m.Field, m.Name, m.Ref, c.cfg.refBase, c.cfg.refAttr, key)
	}
	dn = res.Entries[0].DN
	c.refs.mu.Lock()
	c.refs.dns[key] = dn
	c.refs.mu.Unlock()
	return dn, nil
}
