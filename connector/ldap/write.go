package ldap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// Apply applies writes one entry at a time (LDAP has no transactions).
// For each write it reads the entry's current values of the changed
// attributes and compares them canonically with Old: an entry no longer
// holding an Old value is WriteStale, one already holding every New
// value is WriteApplied unchanged, one that is gone (or no longer matches
// the filter) WriteMissing. Otherwise it sends one Modify that deletes
// each changed attribute's values as just read and adds the new ones; an
// attribute that held nothing is asserted absent (RFC 4528). The server
// applies a Modify whole or not at all, so when a person changed the
// entry in between, the delete fails (noSuchAttribute) or the assertion
// does (assertionFailed) and the write is WriteStale with nothing changed.
// Attributes not mapped are never touched.
//
// Create writes (provision: true) add an entry named
// RDN=value,base_dn with create.object_classes and the mapped attributes;
// the id is read back (entryUUID) or, for an id attribute that is neither
// operational nor mapped, made at random. A retried create finds the
// entry it made. A write failing on the server (a schema violation, an
// access control) fails that write alone. Apply returns an error only when
// the directory cannot be reached at all.
func (c *Connector) Apply(ctx context.Context, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	results := make([]nhisync.WriteResult, len(writes))
	if len(writes) == 0 {
		return results, nil
	}
	conn, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	c.refs.reset()
	for i, w := range writes {
		if w.Create {
			results[i] = c.create(ctx, conn, w)
		} else {
			results[i] = c.update(ctx, conn, w)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return results, nil
}

func failed(err error) nhisync.WriteResult {
	return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
}

// change is a write's change resolved to its mapping.
type change struct {
	m  *nhisync.Mapping
	ch nhisync.Change
}

func (c *Connector) changes(w nhisync.Write) ([]change, error) {
	out := make([]change, 0, len(w.Changes))
	for _, ch := range w.Changes {
		m := c.sys.Mapping(ch.Field)
		switch {
		case m == nil:
			return nil, c.errorf(nhisync.EINVALID, "field %s is not mapped in this system", ch.Field)
		case !c.sys.Direction.Writes() || !m.Direction.Writes():
			return nil, c.errorf(nhisync.EINVALID, "field %s is read-only in this system", ch.Field)
		}
		out = append(out, change{m: m, ch: ch})
	}
	return out, nil
}

// encode turns a canonical value into an attribute's values.
func (c *Connector) encode(ctx context.Context, m *nhisync.Mapping, v nhisync.Value) ([]string, error) {
	x, err := native.Encode(v, m, true)
	if err != nil {
		return nil, err
	}
	var vals []string
	switch x := x.(type) {
	case nil:
	case string:
		vals = []string{x}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				vals = append(vals, s)
			}
		}
	}
	for i, s := range vals {
		if m.Type == nhisync.TypeTime {
			if t, ok := nhisync.ParseTime(s); ok {
				vals[i] = formatGeneralized(t)
			}
		}
		if m.Ref != "" {
			dn, err := c.dnOf(ctx, m, s)
			if err != nil {
				return nil, err
			}
			vals[i] = dn
		}
	}
	return vals, nil
}

// compare reads where an entry stands against changes: stale when an
// attribute holds neither Old nor New; todo lists the changes to make.
func (c *Connector) compare(ctx context.Context, chs []change, e *ldap.Entry) (todo []int, stale bool, err error) {
	for k, cl := range chs {
		cur, err := c.decode(ctx, cl.m, e.GetEqualFoldAttributeValues(cl.m.Name))
		if err != nil {
			return nil, false, err
		}
		t := cl.m.Type
		cur = t.Canonical(cur)
		switch {
		case cur.Equal(t.Canonical(cl.ch.New)):
		case cur.Equal(t.Canonical(cl.ch.Old)):
			todo = append(todo, k)
		default:
			stale = true
		}
	}
	return todo, stale, nil
}

// idFilter is the filter term that finds an entry by id.
func (c *Connector) idFilter(id string) string {
	if strings.EqualFold(c.cfg.id, "objectGUID") {
		if b, ok := guidBytes(id); ok {
			var s strings.Builder
			for _, x := range b {
				fmt.Fprintf(&s, "\\%02x", x)
			}
			return "(objectGUID=" + s.String() + ")"
		}
	}
	return "(" + c.cfg.id + "=" + ldap.EscapeFilter(id) + ")"
}

// guidBytes is the inverse of guidText.
func guidBytes(s string) ([]byte, bool) {
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 {
		return nil, false
	}
	out := make([]byte, 16)
	for i, j := range []int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15} {
		out[j] = raw[i]
	}
	return out, true
}

// find reads the entry with id (attrs only); n is how many entries match
// (0, 1 or 2 meaning more than one).
func (c *Connector) find(conn *ldap.Conn, id string, attrs []string) (*ldap.Entry, int, error) {
	req := ldap.NewSearchRequest(c.cfg.baseDN, c.cfg.scope, ldap.NeverDerefAliases, 2, 0, false,
		"(&"+c.cfg.filter+c.idFilter(id)+")", attrs, nil)
	res, err := conn.Search(req)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, 0, err
	}
	if res == nil || len(res.Entries) == 0 {
		return nil, 0, nil
	}
	return res.Entries[0], len(res.Entries), nil
}

func (c *Connector) update(ctx context.Context, conn *ldap.Conn, w nhisync.Write) nhisync.WriteResult {
	chs, err := c.changes(w)
	if err != nil {
		return failed(err)
	}
	attrs := make([]string, len(chs))
	for k, cl := range chs {
		attrs[k] = cl.m.Name
	}
	e, n, err := c.find(conn, w.ID, attrs)
	switch {
	case err != nil:
		return failed(c.unavail(err, "cannot read entry %s", w.ID))
	case n == 0:
		return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}
	case n > 1:
		return failed(c.errorf(nhisync.EINVALID, "id %q is held by more than one entry; the id attribute must be unique", w.ID))
	}
	todo, stale, err := c.compare(ctx, chs, e)
	switch {
	case err != nil:
		return failed(err)
	case stale:
		return nhisync.WriteResult{Status: nhisync.WriteStale, ID: w.ID}
	case len(todo) == 0:
		return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}
	}
	req := ldap.NewModifyRequest(e.DN, nil)
	var absent []string
	for _, k := range todo {
		cl := chs[k]
		cur := e.GetEqualFoldAttributeValues(cl.m.Name)
		vals, err := c.encode(ctx, cl.m, cl.ch.New)
		if err != nil {
			return failed(err)
		}
		if len(cur) > 0 {
			req.Delete(cl.m.Name, cur)
		} else {
			absent = append(absent, "(!("+cl.m.Name+"=*))")
		}
		if len(vals) > 0 {
			req.Add(cl.m.Name, vals)
		}
	}
	if len(absent) > 0 {
		ctrl, err := assertion("(&" + strings.Join(absent, "") + ")")
		if err != nil {
			return failed(err)
		}
		req.Controls = append(req.Controls, ctrl)
	}
	if err := conn.Modify(req); err != nil {
		switch {
		case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute), ldap.IsErrorWithCode(err, ldap.LDAPResultAssertionFailed):
			return nhisync.WriteResult{Status: nhisync.WriteStale, ID: w.ID}
		case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
			return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}
		}
		return failed(c.errorf(nhisync.EINVALID, "cannot modify %s: %s", e.DN, c.scrub(err)))
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}
}

// assertion returns the RFC 4528 assertion control for filter, critical
// so a server that does not know it refuses the operation rather than
// ignoring the condition.
func assertion(filter string) (ldap.Control, error) {
	pkt, err := ldap.CompileFilter(filter)
	if err != nil {
		return nil, err
	}
	return ldap.NewControlString(oidAssertion, true, string(pkt.Bytes())), nil
}

// operational reports whether the id attribute is one the server makes.
func (c *Connector) operational() bool {
	switch strings.ToLower(c.cfg.id) {
	case "entryuuid", "objectguid", "nsuniqueid", "ipauniqueid", "guid":
		return true
	}
	return false
}

func (c *Connector) create(ctx context.Context, conn *ldap.Conn, w nhisync.Write) nhisync.WriteResult {
	if !c.sys.Provision {
		return failed(c.errorf(nhisync.EINVALID, "this system does not take new records (set provision: true and create: to allow it)"))
	}
	chs, err := c.changes(w)
	if err != nil {
		return failed(err)
	}
	req := ldap.NewAddRequest("", nil)
	req.Attribute("objectClass", c.cfg.objClasses)
	rdnVal, idMapped := "", false
	for _, cl := range chs {
		vals, err := c.encode(ctx, cl.m, cl.ch.New)
		if err != nil {
			return failed(err)
		}
		if strings.EqualFold(cl.m.Name, c.cfg.id) {
			idMapped = true
		}
		if strings.EqualFold(cl.m.Name, c.cfg.rdn) {
			if len(vals) != 1 {
				return failed(c.errorf(nhisync.EINVALID, "a new entry is named by %s (create.rdn), but field %s gives %d values", c.cfg.rdn, cl.m.Field, len(vals)))
			}
			rdnVal = vals[0]
		}
		if len(vals) > 0 {
			req.Attribute(cl.m.Name, vals)
		}
	}
	if rdnVal == "" {
		return failed(c.errorf(nhisync.EINVALID, "a new entry is named by %s (create.rdn), but the record has no value for it", c.cfg.rdn))
	}
	if !idMapped && !c.operational() {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return failed(err)
		}
		req.Attribute(c.cfg.id, []string{hex.EncodeToString(b)})
	}
	req.DN = c.cfg.rdn + "=" + ldap.EscapeDN(rdnVal) + "," + c.cfg.baseDN
	err = conn.Add(req)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return failed(c.errorf(nhisync.EINVALID, "cannot add %s: %s", req.DN, c.scrub(err)))
	}
	retried := err != nil
	attrs := []string{c.cfg.id}
	for _, cl := range chs {
		attrs = append(attrs, cl.m.Name)
	}
	res, serr := conn.Search(ldap.NewSearchRequest(req.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", attrs, nil))
	if serr != nil || len(res.Entries) != 1 {
		return failed(c.unavail(fmt.Errorf("%v", serr), "cannot read back the new entry %s", req.DN))
	}
	e := res.Entries[0]
	id := c.idOf(e)
	if id == "" {
		return failed(c.errorf(nhisync.EINVALID, "the entry %s has no %s (the id setting)", req.DN, c.cfg.id))
	}
	if retried {
		// The entry was there: the create was retried, or someone made it.
		todo, stale, err := c.compare(ctx, chs, e)
		if err != nil || stale || len(todo) > 0 {
			return nhisync.WriteResult{Status: nhisync.WriteStale, ID: id}
		}
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: id}
}
