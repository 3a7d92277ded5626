package ldap

import (
	"context"

	"github.com/go-ldap/ldap/v3"

	"github.com/nhisync/nhisync"
)

var _ nhisync.Watcher = (*Connector)(nil)

// Watch runs an RFC 4533 refreshAndPersist content sync on a connection
// of its own: the refresh phase is passed over, then changed(nil) says
// the feed is subscribed, and each entry added or modified afterwards
// calls changed with its id (a deleted entry calls changed(nil): its id
// may not be readable any more). It returns nil when ctx ends, and
// *nhisync.Error EUNAVAIL when the server does not offer content sync for
// base_dn (poll instead) or the connection fails or is lost.
func (c *Connector) Watch(ctx context.Context, changed func(ids []string)) error {
	if !c.sync.Load() {
		return c.errorf(nhisync.EUNAVAIL, "the directory does not offer content sync (RFC 4533) for %s; poll instead", c.cfg.baseDN)
	}
	conn, err := c.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := ldap.NewSearchRequest(c.cfg.baseDN, c.cfg.scope, ldap.NeverDerefAliases, 0, 0, false,
		c.cfg.filter, []string{c.cfg.id}, nil)
	resp := conn.Syncrepl(ctx, req, 64, ldap.SyncRequestModeRefreshAndPersist, nil, false)
	persisting := false
	for resp.Next() {
		for _, ctrl := range resp.Controls() {
			if info, ok := ctrl.(*ldap.ControlSyncInfo); ok && !persisting {
				// The refresh phase ends with a refreshDelete or
				// refreshPresent message (refreshDone true).
				if (info.RefreshDelete != nil && info.RefreshDelete.RefreshDone) ||
					(info.RefreshPresent != nil && info.RefreshPresent.RefreshDone) {
					persisting = true
					changed(nil)
				}
			}
		}
		e := resp.Entry()
		if !persisting || e == nil || e.DN == "" {
			continue
		}
		if st, ok := ldap.FindControl(resp.Controls(), ldap.ControlTypeSyncState).(*ldap.ControlSyncState); ok && st.State == ldap.SyncStateDelete {
			changed(nil)
			continue
		}
		if id := c.idOf(e); id != "" {
			changed([]string{id})
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := resp.Err(); err != nil {
		return c.unavail(err, "the content sync of %s ended", c.cfg.baseDN)
	}
	return c.errorf(nhisync.EUNAVAIL, "the directory ended the content sync of %s", c.cfg.baseDN)
}
