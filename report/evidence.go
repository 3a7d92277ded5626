package report

import (
	"context"
	_ "embed"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
)

// VerifyScript is a stand-alone checker of inclusion proofs (Python
// standard library and the openssl command; no nhisync code). The
// evidence pack prints it so an auditor need not trust nhisync.
//
//go:embed verify_inclusion.py
var VerifyScript string

// Evidence is an auditor's pack: what `nhisync report evidence` renders as
// one HTML file and prints with -o json.
type Evidence struct {
	GeneratedAt time.Time `json:"generated_at"`
	Window      Window    `json:"window"`
	Scope       Scope     `json:"scope"`
	// Coverage is, per system, how many of its kind's golden records it holds.
	Coverage []Coverage `json:"coverage"`
	// Findings of every report, most severe first, and their counts by
	// type, severity and framework id.
	Findings    []*Finding       `json:"findings"`
	Summary     map[string]int   `json:"summary"`
	BySeverity  map[Severity]int `json:"by_severity"`
	ByFramework []FrameworkCount `json:"by_framework"`
	// Changes counts the audit log's changes in the window per Bucket
	// ("day" or "week").
	Bucket  string        `json:"bucket"`
	Changes []ChangeCount `json:"changes"`
	// Decisions are the people's decisions in the window: conflicts
	// resolved, approvals granted or rejected, quarantine dismissed.
	Decisions []Decision `json:"decisions"`
	// Open counts what still waits for a person.
	Open  OpenItems     `json:"open"`
	Audit AuditEvidence `json:"audit"`
}

// Window is the time the pack covers.
type Window struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// Scope says what the pack is about.
type Scope struct {
	Config  string        `json:"config"`
	Kinds   []KindScope   `json:"kinds"`
	Systems []SystemScope `json:"systems"`
}

// KindScope is one kind and how many golden records it has.
type KindScope struct {
	Name    string `json:"name"`
	Records int    `json:"records"`
	Retired int    `json:"retired"`
}

// SystemScope is one system as configured and as last read.
type SystemScope struct {
	Name      string    `json:"name"`
	Connector string    `json:"connector"`
	Kind      string    `json:"kind"`
	Direction string    `json:"direction"`
	Records   int       `json:"records"`
	LastRead  time.Time `json:"last_read,omitzero"`
	Health    string    `json:"health"`
}

// Coverage is how many golden records of its kind (not retired) a system holds.
type Coverage struct {
	System string `json:"system"`
	Kind   string `json:"kind"`
	Held   int    `json:"held"`
	Total  int    `json:"total"`
}

// FrameworkCount is how many findings carry a framework id.
type FrameworkCount struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Count int    `json:"count"`
}

// ChangeCount is how many changes the audit log holds in one bucket.
type ChangeCount struct {
	Start     time.Time `json:"start"`
	Decisions int       `json:"decisions"`
	Writes    int       `json:"writes"`
}

// Decision is one decision a person made, from the audit log.
type Decision struct {
	Seq    int64         `json:"seq"`
	Time   time.Time     `json:"time"`
	Actor  string        `json:"actor"`
	Action string        `json:"action"`
	Kind   string        `json:"kind,omitempty"`
	Record string        `json:"record,omitempty"`
	Field  string        `json:"field,omitempty"`
	System string        `json:"system,omitempty"`
	Value  nhisync.Value `json:"value"`
	Reason string        `json:"reason,omitempty"`
}

// OpenItems counts the queues.
type OpenItems struct {
	Conflicts  int `json:"conflicts"`
	Quarantine int `json:"quarantine"`
	Approvals  int `json:"approvals"`
}

// AuditEvidence is what lets an auditor check the log without nhisync.
type AuditEvidence struct {
	Entries     int64         `json:"entries"`
	Verified    *audit.Report `json:"verified"`
	Checkpoint  *Checkpoint   `json:"checkpoint"`
	VerifierKey string        `json:"verifier_key"`
	// Proof is an inclusion proof of the newest entry the checkpoint
	// covers, as `nhisync audit proof SEQ -o json` prints it.
	Proof    *audit.Proof `json:"proof,omitempty"`
	Commands []string     `json:"commands"`
	Script   string       `json:"script"`
}

// Checkpoint is the latest signed tree head.
type Checkpoint struct {
	Size int64     `json:"size"`
	Root []byte    `json:"root"`
	Note string    `json:"note"`
	At   time.Time `json:"at"`
}

// decisionActions are the audit actions a person takes.
var decisionActions = []string{nhisync.ActConflictResolved, nhisync.ActApprovalGranted, nhisync.ActApprovalRejected, nhisync.ActQuarantineDismiss}

// writeActions are the audit actions of writes to systems.
var writeActions = []string{nhisync.ActWriteApplied, nhisync.ActRecordProvisioned}

// changeActions are the audit actions that decide a value or a record.
var changeActions = []string{nhisync.ActAccepted, nhisync.ActRefused, nhisync.ActMerged, nhisync.ActQuarantined,
	nhisync.ActConflictOpened, nhisync.ActConflictResolved, nhisync.ActApprovalRequested, nhisync.ActApprovalGranted,
	nhisync.ActApprovalRejected, nhisync.ActQuarantineDismiss, nhisync.ActRecordCreated, nhisync.ActRecordRetired}

// Evidence builds the auditor's pack for the window from since to now
// (since zero: 90 days). verifierKey is the key checkpoints are checked
// with (`nhisync audit key`). It returns the store's codes.
func (r *Reporter) Evidence(ctx context.Context, since time.Time, verifierKey string) (*Evidence, error) {
	if since.IsZero() {
		since = r.now.Add(-90 * 24 * time.Hour)
	}
	ev := &Evidence{GeneratedAt: r.now, Window: Window{Since: since.UTC(), Until: r.now},
		Summary: map[string]int{}, BySeverity: map[Severity]int{}}
	if err := r.scope(ctx, ev); err != nil {
		return nil, err
	}
	for _, name := range Names {
		if name == "drift" && r.opt.Drift == nil {
			continue
		}
		res, err := r.Run(ctx, name)
		if err != nil {
			return nil, err
		}
		ev.Findings = append(ev.Findings, res.Findings...)
	}
	if ev.Findings == nil {
		ev.Findings = []*Finding{}
	}
	res := r.result("evidence", ev.Findings)
	ev.Findings, ev.Summary = res.Findings, res.Summary
	fw := map[string]int{}
	for _, f := range ev.Findings {
		ev.BySeverity[f.Severity]++
		for _, id := range f.Frameworks {
			fw[id]++
		}
	}
	for _, f := range Frameworks {
		ev.ByFramework = append(ev.ByFramework, FrameworkCount{ID: f.ID, Title: f.Title, Count: fw[f.ID]})
	}
	if err := r.history(ctx, ev); err != nil {
		return nil, err
	}
	if err := r.queues(ctx, ev); err != nil {
		return nil, err
	}
	if err := r.auditEvidence(ctx, ev, verifierKey); err != nil {
		return nil, err
	}
	return ev, nil
}

// scope fills the scope and the per-system coverage.
func (r *Reporter) scope(ctx context.Context, ev *Evidence) error {
	ev.Scope.Config = filepath.Base(r.cfg.Path)
	kinds := map[string]*KindScope{}
	for _, k := range r.cfg.KindNames {
		kinds[k] = &KindScope{Name: k}
	}
	held := map[string]int{}
	err := r.store.ScanRecords(ctx, "", func(rec *nhisync.Record) error {
		ks := kinds[rec.Kind]
		if ks == nil {
			return nil
		}
		if retired(rec.Value(LifecycleField)) {
			ks.Retired++
			return nil
		}
		ks.Records++
		for _, l := range liveLinks(rec) {
			held[l.System]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range r.cfg.KindNames {
		ev.Scope.Kinds = append(ev.Scope.Kinds, *kinds[k])
	}
	states, err := r.store.Systems(ctx)
	if err != nil {
		return err
	}
	for _, name := range r.cfg.SystemNames {
		sys := r.cfg.Systems[name]
		ss := SystemScope{Name: name, Connector: sys.Connector, Kind: sys.Kind, Direction: string(sys.Direction), Health: "never read"}
		if i := slices.IndexFunc(states, func(s *nhisync.SystemState) bool { return s.Name == name }); i >= 0 {
			ss.Records, ss.LastRead, ss.Health = states[i].Records, states[i].LastReadAt, states[i].Health
		}
		ev.Scope.Systems = append(ev.Scope.Systems, ss)
		ev.Coverage = append(ev.Coverage, Coverage{System: name, Kind: sys.Kind, Held: held[name], Total: kinds[sys.Kind].Records})
	}
	return nil
}

// history counts changes per day (per week for windows over 60 days) and
// collects people's decisions in the window, from the audit log.
func (r *Reporter) history(ctx context.Context, ev *Evidence) error {
	ev.Bucket = "day"
	step := 24 * time.Hour
	start := ev.Window.Since.Truncate(24 * time.Hour)
	if ev.Window.Until.Sub(start) > 60*24*time.Hour {
		ev.Bucket, step = "week", 7*24*time.Hour
	}
	for t := start; !t.After(ev.Window.Until); t = t.Add(step) {
		ev.Changes = append(ev.Changes, ChangeCount{Start: t})
	}
	ev.Decisions = []Decision{}
	err := r.store.ScanAudit(ctx, 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
		if e.Time.Before(ev.Window.Since) || e.Time.After(ev.Window.Until) {
			return nil
		}
		i := int(e.Time.Sub(start) / step)
		if i >= 0 && i < len(ev.Changes) {
			switch {
			case slices.Contains(writeActions, e.Action):
				ev.Changes[i].Writes++
			case slices.Contains(changeActions, e.Action):
				// A record.created entry also carries its fields' first
				// adoptions, each a decision.
				ev.Changes[i].Decisions += 1 + len(e.Fields)
			}
		}
		if slices.Contains(decisionActions, e.Action) {
			ev.Decisions = append(ev.Decisions, Decision{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Kind: e.Kind,
				Record: e.Record, Field: e.Field, System: e.System, Value: e.New, Reason: e.Reason})
		}
		return nil
	})
	return err
}

// queues counts what still waits for a person.
func (r *Reporter) queues(ctx context.Context, ev *Evidence) error {
	cs, err := r.store.Conflicts(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		return err
	}
	qs, err := r.store.QuarantineItems(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		return err
	}
	as, err := r.store.Approvals(ctx, nhisync.ItemFilter{Status: nhisync.StatusPending})
	if err != nil {
		return err
	}
	ev.Open = OpenItems{Conflicts: len(cs), Quarantine: len(qs), Approvals: len(as)}
	return nil
}

// auditEvidence verifies the log, and gives the latest checkpoint, a
// proof of its newest entry and the commands to check it independently.
func (r *Reporter) auditEvidence(ctx context.Context, ev *Evidence, verifierKey string) error {
	a := &ev.Audit
	a.VerifierKey, a.Script = verifierKey, VerifyScript
	size, _, err := r.store.AuditHead(ctx)
	if err != nil {
		return err
	}
	a.Entries = size
	if verifierKey != "" {
		if a.Verified, err = audit.Verify(ctx, r.store, verifierKey); err != nil {
			return err
		}
	}
	cp, err := r.store.LatestCheckpoint(ctx)
	if err != nil {
		return err
	}
	seq := "SEQ"
	if cp != nil && cp.Size > 0 {
		a.Checkpoint = &Checkpoint{Size: cp.Size, Root: cp.Root, Note: string(cp.Note), At: cp.At}
		if a.Proof, err = audit.InclusionProof(ctx, r.store, cp.Size, cp); err != nil {
			return err
		}
		seq = fmt.Sprint(cp.Size)
	}
	a.Commands = []string{
		"nhisync audit key > verifier.key      # or take the key the operator published",
		"nhisync audit verify                  # chain, Merkle tree and every signed checkpoint",
		"nhisync audit proof " + seq + " -o json > proof.json",
		"python3 verify_inclusion.py proof.json \"$(cat verifier.key)\"   # the script below: Python standard library + openssl, no nhisync code",
	}
	return nil
}
