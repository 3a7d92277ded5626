package ldap

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// Cursor prefixes: a content sync cookie, or a modifyTimestamp.
const (
	cursorSync = "sync:"
	cursorTime = "ts:"
)

func (c *Connector) request(filter string, controls []ldap.Control) *ldap.SearchRequest {
	return ldap.NewSearchRequest(c.cfg.baseDN, c.cfg.scope, ldap.NeverDerefAliases, 0,
		int(c.cfg.timeout/time.Second), false, filter, c.attrs, controls)
}

// Snapshot streams every entry under base_dn that matches the filter, one
// page (RFC 2696, page_size entries) at a time, so memory stays bounded.
// An entry without the id attribute is skipped. It returns *nhisync.Error
// EUNAVAIL when a search fails and EINVALID when a value cannot be
// decoded, naming the entry.
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	_, err := c.paged(ctx, c.cfg.filter, emit)
	return err
}

// paged runs a paged search of filter and returns the highest
// modifyTimestamp seen.
func (c *Connector) paged(ctx context.Context, filter string, emit func(nhisync.Observation) error) (string, error) {
	conn, err := c.client(ctx)
	if err != nil {
		return "", err
	}
	c.refs.reset()
	paging := ldap.NewControlPaging(uint32(c.cfg.pageSize))
	req := c.request(filter, []ldap.Control{paging})
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.sys.Fields))}
	highest := ""
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		res, err := conn.Search(req)
		if err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				return "", c.errorf(nhisync.EUNAVAIL, "base_dn %s does not exist in the directory", c.cfg.baseDN)
			}
			return "", c.unavail(err, "cannot search %s", c.cfg.baseDN)
		}
		for _, e := range res.Entries {
			ok, err := c.observe(ctx, e, &obs)
			if err != nil {
				return "", err
			}
			if !ok {
				continue
			}
			if ts := e.GetAttributeValue("modifyTimestamp"); ts > highest {
				highest = ts
			}
			if err := emit(obs); err != nil {
				return "", err
			}
		}
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if ctrl == nil || len(ctrl.Cookie) == 0 {
			return highest, nil
		}
		paging.SetCookie(ctrl.Cookie)
	}
}

// observe fills obs from entry e; ok is false when e has no id.
func (c *Connector) observe(ctx context.Context, e *ldap.Entry, obs *nhisync.Observation) (ok bool, err error) {
	obs.ID = strings.TrimSpace(c.idOf(e))
	if obs.ID == "" {
		return false, nil
	}
	for i, m := range c.sys.Fields {
		if !m.Direction.Reads() {
			obs.Values[i] = nhisync.Value{}
			continue
		}
		v, err := c.decode(ctx, m, e.GetEqualFoldAttributeValues(m.Name))
		if err != nil {
			return false, c.errorf(nhisync.EINVALID, "entry %s: %s", e.DN, nhisync.ErrorMessage(err))
		}
		obs.Values[i] = v
	}
	obs.Modified = generalizedTime(e.GetAttributeValue("modifyTimestamp"))
	obs.Actor = e.GetAttributeValue("modifiersName")
	return true, nil
}

// idOf returns an entry's id: the id attribute's value, or for a binary
// objectGUID its canonical text.
func (c *Connector) idOf(e *ldap.Entry) string {
	if strings.EqualFold(c.cfg.id, "objectGUID") {
		if raw := e.GetEqualFoldRawAttributeValue(c.cfg.id); len(raw) == 16 {
			return guidText(raw)
		}
	}
	return e.GetEqualFoldAttributeValue(c.cfg.id)
}

// guidText formats an Active Directory objectGUID (little-endian first
// three groups) as its usual text.
func guidText(b []byte) string {
	const hex = "0123456789abcdef"
	order := []int{3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15}
	var s strings.Builder
	for _, i := range order {
		if i < 0 {
			s.WriteByte('-')
			continue
		}
		s.WriteByte(hex[b[i]>>4])
		s.WriteByte(hex[b[i]&0xf])
	}
	return s.String()
}

// decode turns an attribute's values into the canonical value of m. It
// leaves vals (the entry's own slice) as it is.
func (c *Connector) decode(ctx context.Context, m *nhisync.Mapping, vals []string) (nhisync.Value, error) {
	vals = slices.Clone(vals)
	if m.Ref != "" {
		keys := make([]string, 0, len(vals))
		for _, dn := range vals {
			k, err := c.keyOf(ctx, dn)
			if err != nil {
				return nhisync.Value{}, err
			}
			keys = append(keys, k)
		}
		vals = keys
	}
	if m.Type == nhisync.TypeTime {
		for i, v := range vals {
			if t := generalizedTime(v); !t.IsZero() {
				vals[i] = nhisync.FormatTime(t)
			}
		}
	}
	switch {
	case len(vals) == 0:
		return native.Decode(nil, m)
	case m.Type.IsSet():
		elems := make([]any, len(vals))
		for i, v := range vals {
			elems[i] = v
		}
		return native.Decode(elems, m)
	case len(vals) > 1:
		return nhisync.Value{}, nhisync.Errorf(nhisync.EINVALID, "attribute %s holds %d values but field %s is a %s; map it to a set field", m.Name, len(vals), m.Field, m.Type)
	}
	return native.Decode(vals[0], m)
}

// generalizedTime reads an LDAP GeneralizedTime (zero when v is not one).
func generalizedTime(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	for _, layout := range []string{"20060102150405Z0700", "20060102150405.999999999Z0700", "200601021504Z0700", "2006010215Z0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// formatGeneralized writes t as GeneralizedTime in UTC.
func formatGeneralized(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() == 0 {
		return t.Format("20060102150405Z")
	}
	return strings.TrimRight(t.Format("20060102150405.000000000"), "0") + "Z"
}

// Changes streams the entries changed since the cursor ("" for every
// entry) and returns the cursor for the next call.
//
// Where the server offers RFC 4533 (OpenLDAP's syncprov), it runs a
// refreshOnly content sync: the cursor is the server's cookie, and only
// entries added or modified since it come back, however many share a
// second. A cookie the server no longer knows (e-syncRefreshRequired)
// starts over with every entry. Elsewhere it searches
// (modifyTimestamp>=cursor): modifyTimestamp has whole seconds, so the
// comparison is inclusive and entries sharing the cursor's second are
// read again (the engine's content hashes drop the repeats) rather than
// missed. Deleted entries are not reported here: the engine's full
// snapshot finds them. Errors are those of Snapshot.
func (c *Connector) Changes(ctx context.Context, cursor string, emit func(nhisync.Observation) error) (string, error) {
	if c.sync.Load() {
		var cookie []byte
		if rest, ok := strings.CutPrefix(cursor, cursorSync); ok {
			cookie, _ = base64.StdEncoding.DecodeString(rest)
		}
		next, err := c.syncRefresh(ctx, cookie, emit)
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultSyncRefreshRequired && cookie != nil {
			next, err = c.syncRefresh(ctx, nil, emit)
		}
		var passed *passThrough
		switch {
		case errors.As(err, &le) && le.ResultCode == ldap.LDAPResultUnavailableCriticalExtension:
			// The server offers sync, but not for this database: use
			// modifyTimestamp from now on.
			c.sync.Store(false)
			return c.Changes(ctx, "", emit)
		case errors.As(err, &passed):
			return "", passed.err
		case err != nil && ctx.Err() != nil:
			return "", ctx.Err()
		case err != nil:
			return "", c.unavail(err, "content sync of %s failed", c.cfg.baseDN)
		}
		if next == nil {
			return cursor, nil
		}
		return cursorSync + base64.StdEncoding.EncodeToString(next), nil
	}
	filter := c.cfg.filter
	ts, _ := strings.CutPrefix(cursor, cursorTime)
	if ts != "" && !generalizedTime(ts).IsZero() {
		filter = "(&" + c.cfg.filter + "(modifyTimestamp>=" + ldap.EscapeFilter(ts) + "))"
	}
	highest, err := c.paged(ctx, filter, emit)
	if err != nil {
		return "", err
	}
	if highest < ts {
		highest = ts
	}
	if highest == "" {
		return cursor, nil
	}
	return cursorTime + highest, nil
}

// syncRefresh runs one refreshOnly content sync from cookie (nil: from
// nothing) and returns the new cookie. An *ldap.Error is returned as is,
// so the caller can tell e-syncRefreshRequired.
func (c *Connector) syncRefresh(ctx context.Context, cookie []byte, emit func(nhisync.Observation) error) ([]byte, error) {
	conn, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	c.refs.reset()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp := conn.Syncrepl(ctx, c.request(c.cfg.filter, nil), 64, ldap.SyncRequestModeRefreshOnly, cookie, false)
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.sys.Fields))}
	var next []byte
	for resp.Next() {
		for _, ctrl := range resp.Controls() {
			switch ctrl := ctrl.(type) {
			case *ldap.ControlSyncDone:
				if len(ctrl.Cookie) > 0 {
					next = ctrl.Cookie
				}
			case *ldap.ControlSyncInfo:
				if ctrl.NewCookie != nil && len(ctrl.NewCookie.Cookie) > 0 {
					next = ctrl.NewCookie.Cookie
				}
			}
		}
		e := resp.Entry()
		if e == nil || e.DN == "" {
			continue
		}
		if st, ok := ldap.FindControl(resp.Controls(), ldap.ControlTypeSyncState).(*ldap.ControlSyncState); ok && st.State == ldap.SyncStateDelete {
			continue
		}
		ok, err := c.observe(ctx, e, &obs)
		if err != nil {
			return nil, &passThrough{err}
		}
		if !ok {
			continue
		}
		if err := emit(obs); err != nil {
			return nil, &passThrough{err}
		}
	}
	if err := resp.Err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return next, nil
}

// passThrough carries an error of emit or of decoding out of a sync
// unchanged.
type passThrough struct{ err error }

func (p *passThrough) Error() string { return p.err.Error() }
