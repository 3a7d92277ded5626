package engine

import (
	"time"

	"github.com/nhisync/nhisync"
)

// Summary is what one pass did (SPEC §6, `nhisync sync -o json`).
type Summary struct {
	Records            int `json:"records"`
	Created            int `json:"created"`
	Linked             int `json:"linked"`
	Accepted           int `json:"accepted"`
	Refused            int `json:"refused"`
	Merged             int `json:"merged"`
	Quarantined        int `json:"quarantined"`
	ConflictsOpened    int `json:"conflicts_opened"`
	ApprovalsRequested int `json:"approvals_requested"`
	Unmatched          int `json:"unmatched"`
	Disputed           int `json:"disputed"`
	// OpenUnmatched and OpenDisputed count the records of the systems
	// read in full that stay unmatched or disputed after the pass, new or
	// not (nhisync unmatched lists them); Unmatched and Disputed count
	// those that became so in this pass.
	OpenUnmatched int `json:"open_unmatched"`
	OpenDisputed  int `json:"open_disputed"`
	Retired       int `json:"retired"`
	WritesPlanned int `json:"writes_planned"`
	WritesApplied int `json:"writes_applied"`
	WritesFailed  int `json:"writes_failed"`
	WritesStale   int `json:"writes_stale"`
	WritesHeld    int `json:"writes_held"`

	Systems map[string]*SystemSummary `json:"systems"`
	DryRun  bool                      `json:"dry_run"`
	// DurationMS is the pass's wall time in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// Events are the decisions of the pass, in order (kept for plan and
	// for the quickstart story; sync -o json leaves them out).
	Events []*nhisync.AuditEntry `json:"-"`
	// Writes are the writes the pass planned (plan shows them).
	Writes []*nhisync.OutboxWrite `json:"-"`
	// Actions counts every audited decision of the pass by system ("" for
	// nhisync's own) and action, whatever Events kept.
	Actions map[string]map[string]int `json:"-"`
	// kept counts Events per system and action, for EventLimit.
	kept map[string]int
}

// keep adds events to Events, at most limit per system and action about
// records when limit is above 0.
func (s *Summary) keep(events []*nhisync.AuditEntry, limit int) {
	events = nhisync.ExpandAll(events)
	if limit <= 0 {
		s.Events = append(s.Events, events...)
		return
	}
	if s.kept == nil {
		s.kept = map[string]int{}
	}
	for _, ev := range events {
		// Events about a system rather than a record (a guard's request)
		// are few and always kept.
		k := ev.System + "\x00" + ev.Action
		if ev.Record == "" || s.kept[k] < limit {
			s.kept[k]++
			s.Events = append(s.Events, ev)
		}
	}
}

// SystemSummary is what a pass did with one system.
type SystemSummary struct {
	// Mode is "full", "incremental", "skipped" (not read: no connector,
	// or another system named by PassOptions.Systems), "failed" (the read
	// failed) or "paused" (degraded and resting).
	Mode    string `json:"mode"`
	Read    int    `json:"read"`
	Changed int    `json:"changed"`
	Planned int    `json:"planned"`
	Written int    `json:"written"`
	Failed  int    `json:"failed"`
	Stale   int    `json:"stale"`
	Held    int    `json:"held"`
	// ReadFailed is set when the system could not be read this pass.
	ReadFailed bool `json:"read_failed,omitempty"`
	// HeadsKept is set when the pass compared the system's records with
	// the link heads the last pass kept (WithHeadCache), not with heads
	// loaded from the store.
	HeadsKept bool `json:"heads_kept,omitempty"`
	// Paused is set when the system was degraded and resting: neither
	// read nor written this pass, until PausedUntil, after Failures
	// failed passes.
	Paused      bool      `json:"paused,omitempty"`
	PausedUntil time.Time `json:"paused_until,omitzero"`
	Failures    int       `json:"failures,omitempty"`
	// Error is the cause in full: why the read failed, why the system
	// rests, or the last failed write's error.
	Error string `json:"error,omitempty"`
}

// Failing reports whether the pass failed the system (SPEC §3.13): it
// could not be read, it rests after failures, or a write to it failed.
func (ss *SystemSummary) Failing() bool {
	return ss.ReadFailed || ss.Paused || ss.Failed > 0
}

// FailedSystems lists, in config order, the systems the pass failed.
func (s *Summary) FailedSystems(cfg *nhisync.Config) []string {
	var out []string
	for _, name := range cfg.SystemNames {
		if ss := s.Systems[name]; ss != nil && ss.Failing() {
			out = append(out, name)
		}
	}
	return out
}

func newSummary(cfg *nhisync.Config, dry bool) *Summary {
	s := &Summary{Systems: map[string]*SystemSummary{}, DryRun: dry}
	for _, name := range cfg.SystemNames {
		s.Systems[name] = &SystemSummary{Mode: nhisync.ModeSkipped}
	}
	return s
}

func (s *Summary) sys(name string) *SystemSummary {
	ss := s.Systems[name]
	if ss == nil {
		ss = &SystemSummary{Mode: nhisync.ModeSkipped}
		s.Systems[name] = ss
	}
	return ss
}

// count tallies one audit event into the summary.
func (s *Summary) count(ev *nhisync.AuditEntry) {
	if s.Actions == nil {
		s.Actions = map[string]map[string]int{}
	}
	// What a record.created entry carries counts as the entries it
	// stands for (nhisync.AuditEntry.Expand): each link as record.linked,
	// each first value as accepted, each agreeing system as observed.
	// They are tallied first: an entry of a first pass stands for a few
	// dozen, of a handful of systems and actions.
	var t actionTally
	t.add(s, ev.System, ev.Action)
	for _, l := range ev.Links {
		t.add(s, l.System, nhisync.ActRecordLinked)
		s.Linked++
	}
	for _, f := range ev.Fields {
		t.add(s, f.System, nhisync.ActAccepted)
		s.Accepted++
		for _, a := range f.Agreed {
			t.add(s, nhisync.ActorSystem(a), nhisync.ActObserved)
		}
	}
	for _, c := range t.counts[:t.n] {
		s.actionMap(c.system)[c.action] += c.n
	}
	switch ev.Action {
	case nhisync.ActRecordCreated:
		s.Created++
	case nhisync.ActRecordLinked:
		s.Linked++
	case nhisync.ActAccepted:
		s.Accepted++
	case nhisync.ActRefused:
		s.Refused++
	case nhisync.ActMerged:
		s.Merged++
	case nhisync.ActQuarantined:
		s.Quarantined++
	case nhisync.ActConflictOpened:
		s.ConflictsOpened++
	case nhisync.ActApprovalRequested:
		s.ApprovalsRequested++
	case nhisync.ActRecordUnmatched:
		s.Unmatched++
	case nhisync.ActRecordDisputed:
		s.Disputed++
	case nhisync.ActRecordRetired:
		s.Retired++
	}
}

// action counts one audited action of system ("" for nhisync's own).
func (s *Summary) action(system, action string) {
	s.actionMap(system)[action]++
}

// actionMap returns the counts of system's actions, made when absent.
func (s *Summary) actionMap(system string) map[string]int {
	m := s.Actions[system]
	if m == nil {
		m = map[string]int{}
		s.Actions[system] = m
	}
	return m
}

// actionTally counts the actions one audit entry stands for before they
// go into Summary.Actions, one map update per system and action.
type actionTally struct {
	counts [12]struct {
		system, action string
		n              int
	}
	n int
}

// add counts an action of system; once the tally is full, straight into s.
func (t *actionTally) add(s *Summary, system, action string) {
	for i := range t.counts[:t.n] {
		if c := &t.counts[i]; c.system == system && c.action == action {
			c.n++
			return
		}
	}
	if t.n == len(t.counts) {
		s.action(system, action)
		return
	}
	t.counts[t.n].system, t.counts[t.n].action, t.counts[t.n].n = system, action, 1
	t.n++
}
