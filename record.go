package nhisync

import (
	"net/url"
	"strings"
	"time"
)

// Record is a golden record: nhisync's current view of one NHI, a value
// per field with provenance, the links to every system that holds it, and
// the open work about it (conflicts, quarantine, approvals, queued writes).
type Record struct {
	ID   int64
	Kind string
	// Key is the display key: the golden match values, path-escaped and
	// joined by "/". MatchKey is the normalized form used to correlate.
	Key      string
	MatchKey string
	Fields   map[string]*Golden
	Created  time.Time
	Updated  time.Time

	// Links are the record's links to systems (live and gone).
	Links []*Link
	// Open work about the record, loaded with it.
	Conflicts  []*Conflict
	Quarantine []*QuarantineItem
	Approvals  []*Approval
	Outbox     []*OutboxWrite
}

// Value returns the golden value of field (zero if unset).
func (r *Record) Value(field string) Value {
	if g := r.Fields[field]; g != nil {
		return g.Value
	}
	return Value{}
}

// Link returns the record's link to system, or nil.
func (r *Record) Link(system string) *Link {
	for _, l := range r.Links {
		if l.System == system && l.Status != LinkGone {
			return l
		}
	}
	for _, l := range r.Links {
		if l.System == system {
			return l
		}
	}
	return nil
}

// Name returns the record's name as commands print it: KIND/KEY.
func (r *Record) Name() string { return r.Kind + "/" + r.Key }

// Golden is one field's golden value and its provenance.
type Golden struct {
	Value Value `json:"value"`
	// Source is the system (or "person:NAME") that set the value.
	Source string `json:"source"`
	// Actor is who changed it in the source, when known.
	Actor string `json:"actor,omitempty"`
	// Rule is the rule or strategy that chose the value.
	Rule string `json:"rule"`
	// At is when the value became golden; SourceTime the source's own
	// modification time for it (zero if the source has none).
	At         time.Time `json:"at"`
	SourceTime time.Time `json:"source_time,omitzero"`
}

// LinkStatus is the state of a link.
type LinkStatus string

// Link states.
const (
	LinkLive      LinkStatus = "live"
	LinkGone      LinkStatus = "gone"      // vanished from the system
	LinkUnmatched LinkStatus = "unmatched" // no golden record, and the system may not create one
	LinkDisputed  LinkStatus = "disputed"  // more than one golden candidate
	// LinkDismissed is an unmatched or disputed record a person dismissed:
	// no longer listed as open, until it changes or a golden record it
	// matches appears (then it links).
	LinkDismissed LinkStatus = "dismissed"
)

// Link ties a system's record to a golden record and keeps, per field,
// what the system asserts now and the shadow: the last value nhisync and
// the system agreed on.
type Link struct {
	System     string
	ExternalID string
	// RecordID is 0 for an unmatched, disputed or dismissed record.
	RecordID int64
	Status   LinkStatus
	// Hash is the content hash of the last observation (all mapped fields).
	Hash      []byte
	Fields    map[string]*FieldState
	FirstSeen time.Time
	SeenAt    time.Time
	GoneAt    time.Time
	Modified  time.Time
	// Stored is the link as the store that loaded it held it then, for
	// that store's next commit of the link, which so need not read the
	// link's head again: nil for a link made anew and from a store that
	// does not keep it. Nothing but that store reads it, and whoever
	// changes the link leaves it as loaded.
	Stored *StoredLink `json:"-"`
}

// StoredLink is a link's head as a store loaded it, and the store's key
// of the link's state. A store relies on it only for a link it loaded
// itself (By) under the same system and external id, and only when no
// commit wrote the link since the load (Gen; any commit, this process's
// or another's): else it reads the head again.
type StoredLink struct {
	// By tells the store that loaded the link: each open store has its
	// own, and ignores the others'.
	By                 uint64
	System, ExternalID string
	RecordID           int64
	Status             LinkStatus
	Hash               []byte
	StateID            int64
	// Gen tells the store which commits of links the load saw.
	Gen uint64
}

// Field returns the state of field, creating it when absent.
func (l *Link) Field(name string) *FieldState {
	if l.Fields == nil {
		l.Fields = map[string]*FieldState{}
	}
	fs := l.Fields[name]
	if fs == nil {
		fs = &FieldState{}
		l.Fields[name] = fs
	}
	return fs
}

// Asserted returns what the system holds for field (zero if unknown).
func (l *Link) Asserted(field string) Value {
	if fs := l.Fields[field]; fs != nil {
		return fs.Asserted
	}
	return Value{}
}

// FieldState is one system's state of one field of one record.
type FieldState struct {
	// Shadow is the last value nhisync and the system agreed on: read and
	// matched, or written and confirmed.
	Shadow Value `json:"shadow"`
	// Asserted is what the system held when last observed, since Since.
	Asserted   Value     `json:"asserted"`
	Since      time.Time `json:"since,omitzero"`
	SourceTime time.Time `json:"source_time,omitzero"`
	Actor      string    `json:"actor,omitempty"`
	// Report, under on_refused: report, holds the golden value the system
	// was refused against; while the golden value is still that, the
	// system is listed as drift instead of written.
	Report *Value `json:"report,omitempty"`
}

// Proposal is an observed value that differs from its shadow.
type Proposal struct {
	System string    `json:"system"`
	Value  Value     `json:"value"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor,omitempty"`
}

// Status values of conflicts, quarantine items and approvals.
const (
	StatusOpen       = "open"
	StatusResolved   = "resolved"
	StatusDismissed  = "dismissed"
	StatusCleared    = "cleared" // the source changed
	StatusPending    = "pending"
	StatusApproved   = "approved"
	StatusRejected   = "rejected"
	StatusSuperseded = "superseded"
)

// Conflict holds proposals nhisync may not settle alone (resolve: manual).
// While it is open, the golden value stays and writes of the field of the
// record are held.
type Conflict struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	RecordID   int64      `json:"record_id"`
	Record     string     `json:"record"`
	Field      string     `json:"field"`
	Status     string     `json:"status"`
	Proposals  []Proposal `json:"proposals"`
	Golden     Value      `json:"golden"`
	Opened     time.Time  `json:"opened"`
	Resolved   time.Time  `json:"resolved,omitzero"`
	ResolvedBy string     `json:"resolved_by,omitempty"`
	Picked     string     `json:"picked,omitempty"`
	Resolution Value      `json:"resolution,omitzero"`
}

// QuarantineItem is a proposal (or a record) that failed validation or
// could not be correlated. It is neither applied nor propagated.
type QuarantineItem struct {
	ID         int64     `json:"id"`
	Kind       string    `json:"kind"`
	RecordID   int64     `json:"record_id"`
	Record     string    `json:"record"`
	Field      string    `json:"field"`
	System     string    `json:"system"`
	ExternalID string    `json:"external_id"`
	Value      Value     `json:"value"`
	Rule       string    `json:"rule"`
	Reason     string    `json:"reason"`
	Status     string    `json:"status"`
	At         time.Time `json:"at"`
	Closed     time.Time `json:"closed,omitzero"`
	ClosedBy   string    `json:"closed_by,omitempty"`
}

// Approval is a held write waiting for a person: one field of one record
// to one system, or (Guard) every write of a pass to one system, or
// (Guard with Vanished) the retirement of every record that vanished from
// a retire_from system in one pass.
type Approval struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"`
	RecordID int64  `json:"record_id"`
	Record   string `json:"record"`
	Field    string `json:"field"`
	System   string `json:"system"`
	Value    Value  `json:"value"`
	Old      Value  `json:"old"`
	// RequestedBy is the actor whose change caused the write; they may
	// not approve it.
	RequestedBy string    `json:"requested_by"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
	DecidedBy   string    `json:"decided_by,omitempty"`
	Decided     time.Time `json:"decided,omitzero"`
	// Guard approvals hold a whole pass's writes to System, or with
	// Vanished its retirements; Count is how many would overwrite a
	// non-empty value (or retire a record), Sample a few of them.
	Guard  bool     `json:"guard,omitempty"`
	Count  int      `json:"count,omitempty"`
	Sample []string `json:"sample,omitempty"`
	// Vanished lists the ids in System of the records whose vanishing the
	// guard holds (sorted): approving retires them (SPEC §3.11).
	Vanished []string `json:"vanished,omitempty"`
	// SupersededBy is the newer guard request that took this one's place.
	SupersededBy int64 `json:"superseded_by,omitempty"`
}

// HoldsVanishing reports whether the approval is a guard holding the
// retirement of records that vanished, rather than writes.
func (a *Approval) HoldsVanishing() bool { return a.Guard && len(a.Vanished) > 0 }

// Outbox write states.
const (
	OutboxPlanned = "planned" // decided this pass, guard not yet applied
	OutboxReady   = "ready"
	OutboxHeld    = "held" // waits for ApprovalID
)

// OutboxWrite is a planned write, committed with the decisions that caused
// it before it leaves (SPEC §3.9). One per (system, record, field).
type OutboxWrite struct {
	ID         int64  `json:"id"`
	System     string `json:"system"`
	ExternalID string `json:"external_id"`
	RecordID   int64  `json:"record_id"`
	Kind       string `json:"kind"`
	Record     string `json:"record"`
	// Field and Old/New for an update; Create with Values for a new record.
	Field      string           `json:"field"`
	Old        Value            `json:"old"`
	New        Value            `json:"new"`
	Create     bool             `json:"create,omitempty"`
	Values     map[string]Value `json:"values,omitempty"`
	Status     string           `json:"status"`
	ApprovalID int64            `json:"approval_id,omitempty"`
	// Cause is the actor whose change made the write necessary.
	Cause string `json:"cause"`
	// Rule is why New is golden: its source and the rule that chose it.
	Rule      string    `json:"rule,omitempty"`
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"next_at"`
	LastError string    `json:"last_error,omitempty"`
	Created   time.Time `json:"created"`
	// Counts reports whether the write overwrites a non-empty value or
	// retires the record (what the blast-radius guard counts).
	Counts bool `json:"counts,omitempty"`
}

// SystemState is what nhisync remembers of a system between passes.
type SystemState struct {
	Name       string    `json:"name"`
	Cursor     string    `json:"cursor,omitempty"`
	LastReadAt time.Time `json:"last_read_at,omitzero"`
	LastFullAt time.Time `json:"last_full_at,omitzero"`
	Records    int       `json:"records"`
	// Health is "ok" or "degraded"; a degraded system is paused until
	// PausedUntil, with Failures consecutive failed passes.
	Health      string    `json:"health"`
	Failures    int       `json:"failures"`
	PausedUntil time.Time `json:"paused_until,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Mapping fingerprints the system's field mapping; when it changes the
	// stored content hashes no longer apply.
	Mapping string `json:"mapping"`
}

// Health states.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded"
)

// DisplayKey returns the KEY part of KIND/KEY: values path-escaped and
// joined by "/".
func DisplayKey(values []string) string {
	// One allocation, the key's: every new record is named twice.
	n := len(values)
	for _, v := range values {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	for i, v := range values {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(strings.TrimSpace(v)))
	}
	return b.String()
}

// ParseRecordName splits "KIND/KEY" into the kind and the normalized match
// key, given how many match fields the kind has.
func ParseRecordName(name string, matchFields func(kind string) (int, bool)) (kind, matchKey string, err error) {
	kind, rest, ok := strings.Cut(name, "/")
	if !ok || rest == "" {
		return "", "", Errorf(EINVALID, "record %q: name a record as KIND/KEY, e.g. service_account/aws/payments-bot", name)
	}
	n, ok := matchFields(kind)
	if !ok {
		return "", "", Errorf(EINVALID, "record %q: no kind %q in the config", name, kind)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != n {
		return "", "", Errorf(EINVALID, "record %q: kind %s has %d match field(s), so KEY needs %d part(s) joined by /", name, kind, n, n)
	}
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return "", "", Errorf(EINVALID, "record %q: %v", name, err)
		}
		parts[i] = u
	}
	return kind, NormalizeKey(parts), nil
}
