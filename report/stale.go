package report

import (
	"context"
	"fmt"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// UnreadPolls is how many poll intervals a system may go unread before
// `report stale` lists it.
const UnreadPolls = 10

// stale lists what nhisync can no longer vouch for: values whose setter
// has not been seen holding them within the field's stale_after (the
// engine's own rule, engine.HeldSince), time fields older than their
// max_age (long-lived secrets, OWASP NHI7), and systems not read
// successfully for UnreadPolls poll intervals.
func (r *Reporter) stale(ctx context.Context) ([]*Finding, error) {
	states, err := r.store.Systems(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*nhisync.SystemState{}
	for _, s := range states {
		byName[s.Name] = s
	}
	var out []*Finding
	err = r.records(ctx, func(rec *nhisync.Record, k *nhisync.Kind) error {
		if retired(rec.Value(LifecycleField)) {
			return nil
		}
		for _, name := range k.FieldNames {
			f := k.Fields[name]
			if g := rec.Fields[name]; f.StaleAfter > 0 && g != nil && !g.Value.IsZero() {
				held := engine.HeldSince(rec, name, byName)
				if age := r.now.Sub(held); age > f.StaleAfter {
					out = append(out, finding(TypeStaleValue, rec.Kind, rec.Key, g.Source, name,
						"%s %s was set by %s, which has not been seen holding it since %s (%s; stale_after %s): a lower-ranked system may now replace it",
						name, show(f, g.Value), g.Source, held.Format("2006-01-02"), days(age), days(f.StaleAfter)))
				}
			}
			if f.MaxAge <= 0 {
				continue
			}
			v := rec.Value(name)
			t, ok := nhisync.ParseTime(v.Text())
			if v.IsZero() || !ok {
				continue
			}
			if age := r.now.Sub(t); age > f.MaxAge {
				g := rec.Fields[name]
				out = append(out, finding(TypeMaxAge, rec.Kind, rec.Key, g.Source, name,
					"%s is %s (%s old; max_age %s, as %s says)", name, t.Format("2006-01-02"), days(age), days(f.MaxAge), g.Source))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.where != nil {
		return out, nil
	}
	for _, name := range r.cfg.SystemNames {
		sys := r.cfg.Systems[name]
		if !sys.Direction.Reads() {
			continue
		}
		limit := sys.Poll * UnreadPolls
		st := byName[name]
		switch {
		case st == nil || st.LastReadAt.IsZero():
			out = append(out, finding(TypeSystemUnread, sys.Kind, "", name, "",
				"%s has never been read successfully%s", name, lastError(st)))
		case r.now.Sub(st.LastReadAt) > limit:
			out = append(out, finding(TypeSystemUnread, sys.Kind, "", name, "",
				"%s was last read %s (%s ago; poll %s, so at most %s)%s", name,
				st.LastReadAt.Format("2006-01-02 15:04 MST"), ago(r.now.Sub(st.LastReadAt)), sys.Poll, limit, lastError(st)))
		}
	}
	return out, nil
}

func lastError(st *nhisync.SystemState) string {
	if st == nil || st.LastError == "" {
		return ""
	}
	return fmt.Sprintf("; last error: %s", st.LastError)
}

// ago prints a duration the way people say it.
func ago(d time.Duration) string {
	h := d.Hours()
	switch {
	case h >= 48:
		return fmt.Sprintf("%d days", int(h/24))
	case h >= 2:
		return fmt.Sprintf("%d hours", int(h))
	default:
		return fmt.Sprintf("%d minutes", int(h*60))
	}
}
