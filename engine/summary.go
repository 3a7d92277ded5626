package engine

import "github.com/nhisync/nhisync"

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
	Retired            int `json:"retired"`
	WritesPlanned      int `json:"writes_planned"`
	WritesApplied      int `json:"writes_applied"`
	WritesFailed       int `json:"writes_failed"`
	WritesStale        int `json:"writes_stale"`
	WritesHeld         int `json:"writes_held"`

	Systems map[string]*SystemSummary `json:"systems"`
	DryRun  bool                      `json:"dry_run"`
	// DurationMS is the pass's wall time in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// Events are the decisions of the pass, in order (kept for plan and
	// for the quickstart story; sync -o json leaves them out).
	Events []*nhisync.AuditEntry `json:"-"`
	// Writes are the writes the pass planned (plan shows them).
	Writes []*nhisync.OutboxWrite `json:"-"`
}

// SystemSummary is what a pass did with one system.
type SystemSummary struct {
	// Mode is "full", "incremental" or "skipped".
	Mode    string `json:"mode"`
	Read    int    `json:"read"`
	Changed int    `json:"changed"`
	Planned int    `json:"planned"`
	Written int    `json:"written"`
	Failed  int    `json:"failed"`
	Stale   int    `json:"stale"`
	Held    int    `json:"held"`
	// ReadFailed is set when the system could not be read this pass.
	ReadFailed bool   `json:"read_failed,omitempty"`
	Error      string `json:"error,omitempty"`
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
