package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// Unmatched is a record a system holds that links to no golden record
// (SPEC §3.6): unmatched (no golden record matches, and the system may
// not create one) or disputed (several match). It stays listed until it
// links, a golden record is created for it, it vanishes from its system,
// or a person dismisses it.
type Unmatched struct {
	// ID names it for `nhisync unmatched dismiss`: SYSTEM/NATIVE_ID.
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	System   string `json:"system"`
	NativeID string `json:"native_id"`
	// Key is its match values as the system holds them, as in KIND/KEY
	// ("?" for a match field the system does not map).
	Key       string    `json:"key"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// strayStatuses are the link states of records that link to no golden
// record.
var strayStatuses = []nhisync.LinkStatus{nhisync.LinkUnmatched, nhisync.LinkDisputed, nhisync.LinkDismissed}

// Unmatched lists the unmatched and disputed records of every system (of
// system, when not ""), with the dismissed ones too when dismissed is
// set, ordered by system and native id. Storage failures are EINTERNAL.
func (e *Engine) Unmatched(ctx context.Context, system string, dismissed bool) ([]Unmatched, error) {
	statuses := strayStatuses[:2]
	if dismissed {
		statuses = strayStatuses
	}
	seen, err := e.straysSeen(ctx)
	if err != nil {
		return nil, err
	}
	out := []Unmatched{}
	err = e.store.ScanLinks(ctx, system, statuses, func(l *nhisync.Link) error {
		if u, ok := e.unmatchedOf(l, seen[l.System]); ok {
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// unmatchedOf describes a stray link of a system last read in full at
// seen (straysSeen); false for a system no longer in the config.
func (e *Engine) unmatchedOf(l *nhisync.Link, seen time.Time) (Unmatched, bool) {
	sys := e.cfg.Systems[l.System]
	if sys == nil {
		return Unmatched{}, false
	}
	kind := e.cfg.Kinds[sys.Kind]
	if kind == nil {
		return Unmatched{}, false
	}
	vals := make([]string, len(kind.Match))
	for i, f := range kind.Match {
		if sys.Reads(f) {
			vals[i] = l.Asserted(f).Text()
		} else {
			vals[i] = "?"
		}
	}
	u := Unmatched{ID: l.System + "/" + l.ExternalID, Kind: kind.Name, System: l.System, NativeID: l.ExternalID, Key: nhisync.DisplayKey(vals),
		Status: string(l.Status), FirstSeen: l.FirstSeen, LastSeen: lastSeen(l, seen)}
	switch {
	case l.Status == nhisync.LinkDisputed:
		u.Reason = "several golden records match it (disputed): see nhisync quarantine"
	case l.Status == nhisync.LinkDismissed:
		u.Reason = "dismissed by a person"
	default:
		u.Reason = unmatchedWhy(kind, sys, vals)
	}
	return u, true
}

// lastSeen is when the record of stray link l was last seen, its system
// last read in full at seen (straysSeen). A pass stores SeenAt when it
// writes a stray's link, but leaves the link of an unchanged one that
// nothing could match alone (leaveStrays); a full read sees every stray
// of its system that does not vanish (goneStrays), so a stray link not
// gone was seen at the system's last full read, or later (an incremental
// read that wrote it). This is the SeenAt a pass that rewrote every
// stray's link on each full read stored.
func lastSeen(l *nhisync.Link, seen time.Time) time.Time {
	if l.RecordID == 0 && l.GoneAt.IsZero() && slices.Contains(strayStatuses, l.Status) && seen.After(l.SeenAt) {
		return seen
	}
	return l.SeenAt
}

// straysSeen returns, by system, when a pass last read it in full, as
// stored (metaStraysSeen); systems a pass never read so are left out.
// Storage failures are EINTERNAL.
func (e *Engine) straysSeen(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for _, name := range e.cfg.SystemNames {
		v, err := e.store.Meta(ctx, metaStraysSeen+name)
		if err != nil {
			return nil, err
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && v != "" {
			out[name] = time.Unix(0, n).UTC()
		}
	}
	return out, nil
}

// setMeta sets key to value in m, making m when nil, and returns it.
func setMeta(m map[string]string, key, value string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[key] = value
	return m
}

// unmatchedWhy says why a record of sys with match values vals links to
// no golden record, as the pass would.
func unmatchedWhy(kind *nhisync.Kind, sys *nhisync.System, vals []string) string {
	for i, f := range kind.Match {
		if !sys.Reads(f) {
			return fmt.Sprintf("no golden record matches, and %s does not map every match field so it cannot create one", sys.Name)
		}
		if strings.TrimSpace(vals[i]) == "" {
			return fmt.Sprintf("match field %s is empty", f)
		}
	}
	return UnmatchedReason(kind, sys.Name)
}

// UnmatchedReason says why a record of system that no golden record
// matches stays unmatched, and how a config would let it become one.
func UnmatchedReason(kind *nhisync.Kind, system string) string {
	if len(kind.CreateFrom) == 0 {
		return fmt.Sprintf("no golden record matches, and kind %s has no create_from, so no system may create golden records: list the systems whose records are NHIs of record in kinds.%s.create_from (e.g. create_from: [%s])",
			kind.Name, kind.Name, system)
	}
	return fmt.Sprintf("no golden record matches, and %s is not in create_from of %s (%s)", system, kind.Name, strings.Join(kind.CreateFrom, ", "))
}

// ParseUnmatchedID splits SYSTEM/NATIVE_ID. Errors: EINVALID.
func (e *Engine) ParseUnmatchedID(id string) (system, nativeID string, err error) {
	system, nativeID, ok := strings.Cut(id, "/")
	if !ok || nativeID == "" || e.cfg.Systems[system] == nil {
		return "", "", errInvalid("unmatched record %q: name it SYSTEM/NATIVE_ID as `nhisync unmatched` lists it (systems: %s)", id, strings.Join(e.cfg.SystemNames, ", "))
	}
	return system, nativeID, nil
}

// DismissUnmatched closes an unmatched or disputed record for a person:
// it is no longer listed as open (a disputed record's quarantine item is
// dismissed with it), until it changes in its system; should a golden
// record it matches appear, it still links. The dismissal is audited with
// actor's name. Errors: ENOTFOUND, ECONFLICT (not unmatched or disputed,
// or a pass is running).
func (e *Engine) DismissUnmatched(ctx context.Context, system, nativeID, actor string) (*Unmatched, error) {
	var u Unmatched
	// Under the pass lease, its commit fenced by it, as every human
	// action's: a dismissal stalled past its lease while a pass took it
	// and wrote commits nothing.
	err := e.act(ctx, func(d *decider) error {
		links, err := e.store.LoadLinks(ctx, system, []string{nativeID})
		if err != nil {
			return err
		}
		if len(links) == 0 {
			return errNotFound("%s holds no record %q that nhisync has seen; list them with `nhisync unmatched`", system, nativeID)
		}
		l := links[0]
		if !slices.Contains(strayStatuses[:2], l.Status) {
			what := "is " + string(l.Status)
			if l.Status == nhisync.LinkLive {
				what = "links to a golden record"
			}
			return nhisync.Errorf(nhisync.ECONFLICT, "%s/%s %s: only unmatched and disputed records are dismissed", system, nativeID, what)
		}
		seen, err := e.straysSeen(ctx)
		if err != nil {
			return err
		}
		u, _ = e.unmatchedOf(l, seen[system])
		b := d.batch
		items, err := e.store.QuarantineItems(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen, System: system})
		if err != nil {
			return err
		}
		for _, q := range items {
			if q.RecordID == 0 && q.ExternalID == nativeID {
				q.Status, q.Closed, q.ClosedBy = nhisync.StatusDismissed, d.now, actor
				b.Quarantine = append(b.Quarantine, q)
			}
		}
		l.Status = nhisync.LinkDismissed
		b.Links = append(b.Links, l)
		e.auditTo(b, &nhisync.AuditEntry{Action: nhisync.ActRecordDismissed, Actor: nhisync.Person(actor), Kind: u.Kind, Record: u.Key, System: system,
			Old: nhisync.Str(u.Status), New: nhisync.Str(nativeID), Reason: fmt.Sprintf("%s dismissed the %s record (%s)", actor, u.Status, u.Reason)}, d.now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.Status = string(nhisync.LinkDismissed)
	return &u, nil
}
