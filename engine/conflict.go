package engine

// SPEC §3.3 resolve: manual — conflicts opened and joined by a pass.

import (
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// openConflict returns rec's open conflict on field, or nil.
func openConflict(rec *nhisync.Record, field string) *nhisync.Conflict {
	for _, c := range rec.Conflicts {
		if c.Status == nhisync.StatusOpen && c.Field == field {
			return c
		}
	}
	return nil
}

// openNewConflict opens a conflict with every proposal (and the incumbent
// value); the golden value stays and the proposers are heard.
func (rc *recCtx) openNewConflict(f *nhisync.Field, gv nhisync.Value, ps []*prop, incumbent *prop) error {
	id, err := rc.d.ids.get(rc.ctx)
	if err != nil {
		return err
	}
	c := &nhisync.Conflict{ID: id, Kind: rc.rec.Kind, RecordID: rc.rec.ID, Record: rc.rec.Key, Field: f.Name, Status: nhisync.StatusOpen, Golden: gv, Opened: rc.d.now}
	if incumbent != nil {
		c.Proposals = append(c.Proposals, incumbent.Proposal)
	}
	for _, p := range ps {
		c.Proposals = append(c.Proposals, p.Proposal)
		p.fs.Shadow = p.Value
	}
	rc.rec.Conflicts = append(rc.rec.Conflicts, c)
	rc.d.batch.Conflicts = append(rc.d.batch.Conflicts, c)
	var sb []string
	for _, pr := range c.Proposals {
		sb = append(sb, pr.System+"="+quote(f, pr.Value))
	}
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActConflictOpened, Field: f.Name, Old: gv, Reason: "manual: " + strings.Join(sb, ", ")})
	return nil
}

// joinConflict adds new proposals to an open conflict.
func (rc *recCtx) joinConflict(f *nhisync.Field, c *nhisync.Conflict, ps []*prop) {
	for _, p := range ps {
		p.fs.Shadow = p.Value
		i := slices.IndexFunc(c.Proposals, func(x nhisync.Proposal) bool { return x.System == p.System })
		if i >= 0 {
			c.Proposals[i] = p.Proposal
		} else {
			c.Proposals = append(c.Proposals, p.Proposal)
		}
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActConflictUpdated, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, New: p.Value, Reason: "new proposal while the conflict is open"})
	}
	rc.d.batch.Conflicts = append(rc.d.batch.Conflicts, c)
}
