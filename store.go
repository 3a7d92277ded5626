package nhisync

import (
	"context"
	"fmt"
	"time"
)

// RecordHead is the part of a golden record the engine keeps in memory
// for correlation.
type RecordHead struct {
	ID       int64
	Kind     string
	MatchKey string
}

// LinkHead is the part of a link the engine keeps in memory to tell an
// unchanged record by its content hash.
type LinkHead struct {
	System     string
	ExternalID string
	RecordID   int64
	Status     LinkStatus
	Hash       []byte
}

// Batch is everything one step of a pass decided. Store.Commit writes it
// in one transaction, so a crash keeps all of it or none (SPEC §3.9).
type Batch struct {
	// Records are upserted whole (golden fields); Links by (system, id).
	Records []*Record
	Links   []*Link
	// Items are upserted by ID (IDs come from Store.NewIDs).
	Conflicts  []*Conflict
	Quarantine []*QuarantineItem
	Approvals  []*Approval
	Outbox     []*OutboxWrite
	// OutboxDone lists outbox IDs to delete (applied, superseded, dropped).
	OutboxDone []int64
	// Audit entries are appended in order; the store seals each one
	// (Seq, PrevHash, Hash) after the last entry it holds.
	Audit   []*AuditEntry
	Systems []*SystemState
	Meta    map[string]string
	// Fence, when set, makes the commit conditional on a lease: the store
	// checks, in the commit's own transaction, that Fence.Holder still
	// holds the lease Fence.Lease at Fence.Epoch, and writes nothing
	// otherwise (ECONFLICT). A pass that stalled past its lease, while
	// another process took the lease and wrote, cannot commit afterwards.
	Fence *Fence
	// Claim, when set, makes the commit conditional on an outbox claim:
	// every write of Outbox and OutboxDone that the claim names must still
	// be queued and held by it (not sent and removed by another sender,
	// not taken by another claim after this one expired), else the store
	// writes nothing (ECONFLICT). The outcome of a write is so recorded
	// once, by the one sender that holds it. A write the batch rewrites
	// (Outbox) leaves its claim.
	Claim *Claim

	// prepared holds the Audit entries' leaf bodies, encoded ahead by
	// PrepareAudit, and the buffer their sealed leaves are written to.
	prepared *preparedAudit
}

// ClaimRequest asks Store.ClaimOutbox for queued writes to send.
type ClaimRequest struct {
	// System's ready writes due at or before Due (zero: Now) are claimed,
	// oldest first (NextAt, then ID), at most Limit of them (0: all),
	// passing over writes another live claim holds.
	System string
	Due    time.Time
	Limit  int
	// Holder names the sender; the claim lasts until Now+TTL unless
	// renewed. Past that another sender may claim its writes: a dead
	// sender's writes return to the queue.
	Holder string
	Now    time.Time
	TTL    time.Duration
	// Fence, when set, makes the claim conditional on a lease, as it does
	// a commit (ECONFLICT when lost): a pass claims under its pass lease.
	Fence *Fence
	// Yield, when set, names a lease the sender gives way to: while a
	// holder other than Holder holds it unexpired at Now, nothing is
	// claimed (ECONFLICT). Senders outside a pass yield to the pass lease,
	// and a pass that took it waits for their live claims to end
	// (OutboxClaims), so a pass never decides a record while another
	// process moves its links.
	Yield string
}

// Claim is the hold of one sender on the queued writes it is sending
// (Store.ClaimOutbox): while it lives no other claim takes them, across
// every process sharing the store.
type Claim struct {
	Holder string
	// Token tells this claim from every other, the same holder's included.
	Token int64
	Until time.Time
	// IDs are the claimed writes, in the order they were returned.
	IDs []int64
}

// Fence is a held lease used as a fencing token: the lease's name, its
// holder and the epoch at which the holder took it. The epoch grows each
// time the lease passes to a holder that did not hold it just before
// (renewals keep it), so a holder that lost the lease and took it again
// has another epoch than the one its stale work carries.
type Fence struct {
	Lease  string
	Holder string
	Epoch  int64
}

// Empty reports whether the batch holds nothing to write.
func (b *Batch) Empty() bool {
	return len(b.Records) == 0 && len(b.Links) == 0 && len(b.Conflicts) == 0 &&
		len(b.Quarantine) == 0 && len(b.Approvals) == 0 && len(b.Outbox) == 0 &&
		len(b.OutboxDone) == 0 && len(b.Audit) == 0 && len(b.Systems) == 0 && len(b.Meta) == 0
}

// ItemFilter selects conflicts, quarantine items or approvals. Zero
// members select everything.
type ItemFilter struct {
	Status   string
	RecordID int64
	Kind     string
	System   string
	// After and Limit select a keyset page: items with an ID above After,
	// at most Limit of them (0: all).
	After int64
	Limit int
}

// Checkpoint is a signed tree head of the audit log.
type Checkpoint struct {
	Size int64
	Root []byte
	// Note is the signed note text (transparency-dev checkpoint format).
	Note []byte
	At   time.Time
	// State is the compact Merkle range of the tree the checkpoint signs
	// (its perfect-subtree hashes, as a [Notary] encodes them; opaque to
	// stores), so the next checkpoint hashes only the entries added since.
	// Nil for checkpoints signed outside a commit.
	State []byte
	// LastHash is the hash of the entry at Size, so a store can tell its
	// head is exactly the entry the checkpoint covers ("" when unknown).
	LastHash string
}

// Notary signs the audit log's checkpoints from inside a store's commit:
// a store given one writes, in the same transaction that appends audit
// entries, a checkpoint covering them, so every entry is covered by a
// signature from the moment it exists, and an entry no checkpoint covers
// is evidence of tampering. Before signing, the store refuses (ECONFLICT)
// to extend a log whose head is not exactly the latest checkpoint's: it
// never signs entries it did not append itself.
type Notary interface {
	// Extend returns the signed checkpoint of the tree prev covers
	// extended by leaves, the RFC 6962 leaf hashes of the entries that
	// follow it, in order. prev is the latest stored checkpoint (nil for
	// an empty log); Extend checks its signature and that its State
	// hashes to its Root. A prev without State (signed outside a commit)
	// comes with the leaves of every entry from the first, and Extend
	// checks the tree at prev.Size against prev.Root. It fills every
	// member of the checkpoint but LastHash.
	Extend(prev *Checkpoint, leaves [][]byte) (*Checkpoint, error)
	// Publish is given checkpoints, in order, once the transactions that
	// stored them committed (and were synced), to keep a copy outside the
	// store: one at a time after each commit, or all a bulk window's
	// commits signed at its end, in one append. The store returns its
	// error from Commit or EndBulk (the batches stay committed).
	Publish(cs ...*Checkpoint) error
}

// BulkLoader is a Store that takes a first pass into an empty store as a
// bulk load: instead of putting every new record's match key and every new
// link's (system, external id) into a unique index at a random place (one
// page written per insert once the index outgrows a batch), it builds
// those indexes once, sorted, when the load ends.
//
// BeginBulk opens the window only when the store holds no records, no
// links and no queued writes, and reports whether it did; otherwise it
// changes nothing (a pass in the window takes every write queued to be
// its own). Inside
// the window the caller guarantees that every Commit only adds records and
// links the store does not hold yet, each once (new match keys, new
// system and external ids), and that it looks no record or link up by
// match key or external id; commits stay atomic, but a store may make
// them durable only when EndBulk returns (the SQLite store syncs the
// window once there), so the caller sends no write and publishes no
// checkpoint of the window before. EndBulk builds the indexes, failing (EINTERNAL,
// naming the duplicate) if the guarantee was broken; after it the store
// is as if every commit had gone through the indexes. A process that dies
// inside the window leaves either a mark from which the next Open builds
// the indexes before anything else, or the store as it was before the
// window (none of it committed: the next pass is a first pass again).
// Stores without a cheaper bulk path need not implement it.
type BulkLoader interface {
	BeginBulk(ctx context.Context) (bool, error)
	EndBulk(ctx context.Context) error
}

// LinkHeadPager is a Store that hands a system's link heads out a page at
// a time, in memory it reuses: ScanLinkHeadPages is ScanLinkHeads, but fn
// is given a page of heads (in the same order, never an empty page; fn
// may write over it) whose ExternalID and Hash are valid only until fn
// returns, for a caller that copies what it keeps
// (a pass's head table keeps every id and hash in memory of its own). The
// store then neither allocates nor copies a page's ids and hashes once
// more for each page, a few million heads a pass. Stores need not
// implement it.
type LinkHeadPager interface {
	ScanLinkHeadPages(ctx context.Context, system string, fn func([]LinkHead) error) error
}

// LinksVersioner is a Store that tells whether any link head (a link's
// record, status or hash) changed: LinksVersion returns a value that every
// commit changing a link head, by any process on the store, replaces in
// the same transaction by a new one drawn at random. The same value read
// twice means no head changed in between, so an engine running pass after
// pass (nhisync serve, engine.WithHeadCache) may keep the link heads a
// pass read for the next instead of reading them again. Stores need not
// implement it.
type LinksVersioner interface {
	LinksVersion(ctx context.Context) (uint64, error)
}

// ForCommit marks ctx as loading records (Store.LoadRecords) that the
// caller is about to decide and commit: a pass's records with work. A
// store may then ready itself for the commits that rewrite them (the
// SQLite store maps its file into its writer's connection, through which
// those commits read the records' pages). Loads for anything else (a
// person's view, the API) are not marked.
func ForCommit(ctx context.Context) context.Context {
	return context.WithValue(ctx, forCommitMark, true)
}

// IsForCommit reports whether ctx is marked by ForCommit.
func IsForCommit(ctx context.Context) bool {
	return marked(ctx, forCommitMark)
}

// Ahead marks ctx as loading links (Store.LoadLinks) ahead of their
// commit, while a commit of the caller's own may be in flight: a drain
// builds the outcome of its next chunk of writes while the one before
// commits, and builds it again when that commit wrote one of its links.
// A store may then read them where they need not wait for that commit
// (the SQLite store reads them on a reader connection instead of its
// writer's); unmarked loads read where its commits write.
func Ahead(ctx context.Context) context.Context {
	return context.WithValue(ctx, aheadMark, true)
}

// IsAhead reports whether ctx is marked by Ahead.
func IsAhead(ctx context.Context) bool {
	return marked(ctx, aheadMark)
}

// loadMark is the context key of a mark on a load (ForCommit, Ahead).
type loadMark int

const (
	forCommitMark loadMark = iota + 1
	aheadMark
)

// marked reports whether ctx carries mark m.
func marked(ctx context.Context, m loadMark) bool {
	v, _ := ctx.Value(m).(bool)
	return v
}

// WALReporter is a Store whose write-ahead log is copied back into the
// database in the background (sqlite). A background checkpoint that keeps
// failing is no commit's error: the log only grows, so the service shows
// WALStatus as metrics and logs each new failure.
type WALReporter interface {
	WALStatus() WALStatus
}

// WALStatus is the state of a store's write-ahead log and of the
// checkpoints that copy it back.
type WALStatus struct {
	// Frames is how many frames (pages) the log holds now, copied back or
	// not; 0 when the store cannot tell.
	Frames int64
	// Checkpoints counts the checkpoints that ran since the store opened,
	// Failures those that failed.
	Checkpoints, Failures int64
	// LastError is the last failure's message ("" when none failed).
	LastError string
}

// Store keeps nhisync's state: golden records, links and shadows, open
// work, the outbox and the audit log. Every method returns *Error with
// ENOTFOUND for a missing item and EINTERNAL for storage failures.
type Store interface {
	// ScanRecordHeads streams the head of every golden record.
	ScanRecordHeads(ctx context.Context, fn func(RecordHead) error) error
	// ScanLinkHeads streams the head of every link of system.
	ScanLinkHeads(ctx context.Context, system string, fn func(LinkHead) error) error
	// LoadRecords returns the records with the given IDs, each with its
	// links, open conflicts and quarantine items, non-superseded approvals
	// and outbox writes. Missing IDs are left out.
	LoadRecords(ctx context.Context, ids []int64) ([]*Record, error)
	// LoadLinks returns the links of system with the given external IDs.
	LoadLinks(ctx context.Context, system string, ids []string) ([]*Link, error)
	// RecordKeys returns the display key (Record.Key) of each record with
	// the given IDs, by ID: what an audit entry names a record by, without
	// loading it. Missing IDs are left out.
	RecordKeys(ctx context.Context, ids []int64) (map[int64]string, error)
	// RecordByKey returns the record of kind with the normalized match key.
	RecordByKey(ctx context.Context, kind, matchKey string) (*Record, error)
	// RecordIDsByKey returns, by key, the ID of the record of kind holding
	// each of the normalized match keys; keys no record holds are left
	// out. A pass that needs a few keys asks for them so, instead of
	// loading every record's head (ScanRecordHeads).
	RecordIDsByKey(ctx context.Context, kind string, keys []string) (map[string]int64, error)
	// CountRecords returns how many golden records each kind has; kinds
	// without one are left out.
	CountRecords(ctx context.Context) (map[string]int, error)
	// ScanRecords streams full records of kind ("" for all), in ID order.
	ScanRecords(ctx context.Context, kind string, fn func(*Record) error) error
	// RecordsAfter returns at most limit full records of kind ("" for
	// all) whose ID is above after, in ID order: one keyset page.
	RecordsAfter(ctx context.Context, kind string, after int64, limit int) ([]*Record, error)
	// GoldenAfter is RecordsAfter with the golden fields only: no links
	// and no open work (what a filter over records reads).
	GoldenAfter(ctx context.Context, kind string, after int64, limit int) ([]*Record, error)
	// ScanLinks streams every link of system ("" for all) with Status in
	// statuses (none for all).
	ScanLinks(ctx context.Context, system string, statuses []LinkStatus, fn func(*Link) error) error

	// Commit writes a batch in one transaction.
	Commit(ctx context.Context, b *Batch) error
	// NewIDs reserves n consecutive IDs for records and items and returns
	// the first.
	NewIDs(ctx context.Context, n int) (int64, error)

	Conflicts(ctx context.Context, f ItemFilter) ([]*Conflict, error)
	Conflict(ctx context.Context, id int64) (*Conflict, error)
	QuarantineItems(ctx context.Context, f ItemFilter) ([]*QuarantineItem, error)
	QuarantineItem(ctx context.Context, id int64) (*QuarantineItem, error)
	Approvals(ctx context.Context, f ItemFilter) ([]*Approval, error)
	Approval(ctx context.Context, id int64) (*Approval, error)
	// OutboxWrites returns queued writes of system ("" for all) with the
	// status ("" for all) due at or before due (zero for any time), oldest
	// first, at most limit (0 for no limit).
	OutboxWrites(ctx context.Context, system, status string, due time.Time, limit int) ([]*OutboxWrite, error)

	// Systems returns the remembered state of every system.
	Systems(ctx context.Context) ([]*SystemState, error)
	// Meta returns a stored setting ("" if absent).
	Meta(ctx context.Context, key string) (string, error)

	// AuditHead returns the number of entries and the last entry's hash.
	AuditHead(ctx context.Context) (size int64, lastHash string, err error)
	// ScanAudit streams entries with from <= seq < to (to 0: to the end),
	// with the exact leaf bytes stored for each.
	ScanAudit(ctx context.Context, from, to int64, fn func(e *AuditEntry, leaf []byte) error) error
	// AuditByRecord returns every entry about a record, in order.
	AuditByRecord(ctx context.Context, recordID int64) ([]*AuditEntry, error)
	// PutCheckpoint stores a signed tree head; LatestCheckpoint returns the
	// newest (nil if none).
	PutCheckpoint(ctx context.Context, c *Checkpoint) error
	LatestCheckpoint(ctx context.Context) (*Checkpoint, error)
	// ScanCheckpoints streams every stored checkpoint in order of tree
	// size, so `audit verify` can check each one, not only the latest.
	// An error from fn stops the scan and is returned as is.
	ScanCheckpoints(ctx context.Context, fn func(*Checkpoint) error) error

	// AcquireLease takes or renews the named lease for holder until
	// now+ttl; it returns false when another holder has it.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	// Lease returns who holds the named lease and until when ("" and the
	// zero time when nobody does).
	Lease(ctx context.Context, name string) (holder string, expires time.Time, err error)
	// LeaseFence returns the fencing token of the named lease when holder
	// holds it (ECONFLICT when it does not): what Batch.Fence carries.
	LeaseFence(ctx context.Context, name, holder string) (*Fence, error)
	// ClaimOutbox claims queued writes for one sender (ClaimRequest says
	// which) and returns them, with the claim that holds them (its IDs
	// empty when none was due and free). Two live claims never hold the
	// same write. EINVALID for a request without system, holder or a
	// positive TTL; ECONFLICT when the fence's lease was lost or the
	// Yield lease is held by another.
	ClaimOutbox(ctx context.Context, req ClaimRequest) (*Claim, []*OutboxWrite, error)
	// RenewClaim extends c's hold on the writes ids (some of c.IDs) to
	// now+ttl, even past c's expiry as long as no other claim took them
	// (and sets c.Until); ECONFLICT, renewing nothing, when any of them is
	// no longer queued or no longer held by c.
	RenewClaim(ctx context.Context, c *Claim, ids []int64, now time.Time, ttl time.Duration) error
	// ReleaseClaim returns the writes c still holds to the queue.
	ReleaseClaim(ctx context.Context, c *Claim) error
	// ReleaseClaims returns every write holder's claims hold to the queue:
	// what a process that knows holder is gone (killed on this host) does,
	// rather than wait for the claims to expire.
	ReleaseClaims(ctx context.Context, holder string) error
	// OutboxClaims returns the holders of live claims at now, each with
	// when its last claim expires (empty when no claim lives).
	OutboxClaims(ctx context.Context, now time.Time) (map[string]time.Time, error)
	// SetNotary makes every later Commit that appends audit entries sign
	// a checkpoint of them in the same transaction.
	SetNotary(n Notary)

	// TokenStore keeps the API's and console's tokens (SPEC §7).
	TokenStore

	Close() error
}

// Check refuses a batch the caller built wrong (an item without its ID,
// a link without its system or external id), before a store writes
// anything. Every Store.Commit calls it; the error is EINVALID.
func (b *Batch) Check() *Error {
	for _, r := range b.Records {
		if r == nil || r.ID <= 0 {
			return Errorf(EINVALID, "a record in the batch has no ID (take IDs from NewIDs)")
		}
	}
	for _, l := range b.Links {
		if l == nil || l.System == "" || l.ExternalID == "" {
			return Errorf(EINVALID, "a link in the batch has no system or external id")
		}
	}
	for _, c := range b.Conflicts {
		if c == nil || c.ID <= 0 {
			return Errorf(EINVALID, "a conflict in the batch has no ID (take IDs from NewIDs)")
		}
	}
	for _, q := range b.Quarantine {
		if q == nil || q.ID <= 0 {
			return Errorf(EINVALID, "a quarantine item in the batch has no ID (take IDs from NewIDs)")
		}
	}
	for _, a := range b.Approvals {
		if a == nil || a.ID <= 0 {
			return Errorf(EINVALID, "an approval in the batch has no ID (take IDs from NewIDs)")
		}
	}
	for _, w := range b.Outbox {
		if w == nil || w.ID <= 0 {
			return Errorf(EINVALID, "an outbox write in the batch has no ID (take IDs from NewIDs)")
		}
	}
	for _, st := range b.Systems {
		if st == nil || st.Name == "" {
			return Errorf(EINVALID, "a system state in the batch has no name")
		}
	}
	for _, e := range b.Audit {
		if e == nil {
			return Errorf(EINVALID, "an audit entry in the batch is nil")
		}
	}
	if b.Claim != nil && (b.Claim.Holder == "" || b.Claim.Token == 0) {
		return Errorf(EINVALID, "the batch's outbox claim has no holder or token (take claims from ClaimOutbox)")
	}
	return nil
}

// ClaimLost is the error both stores return when a claim no longer holds
// n of the queued writes its holder names (renewing it or committing under
// it): another process sent them, or took them after the claim expired.
func ClaimLost(op string, n int) *Error {
	return &Error{Code: ECONFLICT, Op: op, Message: fmt.Sprintf(
		"this process's claim no longer holds %d of the queued writes it was sending: they were sent by another process, or taken by one after the claim expired (was this one paused or stalled?); nothing of this step was written", n)}
}

// DistinctIDs returns ids without repeats, in first-seen order.
func DistinctIDs(ids []int64) []int64 {
	seen := make(map[int64]bool, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// ClaimedIDs returns the outbox writes of the batch (Outbox and
// OutboxDone) that its Claim names, each once: what a store checks the
// claim still holds before it commits. Nil without a claim.
func (b *Batch) ClaimedIDs() []int64 {
	if b.Claim == nil {
		return nil
	}
	named := make(map[int64]bool, len(b.Claim.IDs))
	for _, id := range b.Claim.IDs {
		named[id] = true
	}
	var out []int64
	take := func(id int64) {
		if named[id] {
			out = append(out, id)
			delete(named, id)
		}
	}
	for _, w := range b.Outbox {
		take(w.ID)
	}
	for _, id := range b.OutboxDone {
		take(id)
	}
	return out
}

// CoveredHead refuses (ECONFLICT) an audit log whose head (seq entries,
// the last hashing to hash) is not exactly the one the latest checkpoint
// covers: a store checks it before it signs new entries, so it never
// signs entries it did not append. latest is nil for a log never signed.
func CoveredHead(latest *Checkpoint, seq int64, hash string) error {
	var covered int64
	if latest != nil {
		covered = latest.Size
	}
	switch {
	case seq > covered:
		return &Error{Code: ECONFLICT, Message: fmt.Sprintf(
			"the audit log holds entries %d to %d that no signed checkpoint covers (appended outside nhisync, or checkpoints deleted?): nhisync will not sign entries it did not write; run nhisync audit verify, and restore the store from a backup",
			covered+1, seq)}
	case seq < covered:
		return &Error{Code: ECONFLICT, Message: fmt.Sprintf(
			"the audit log holds %d entries but its latest checkpoint was signed at size %d (tail deleted?): run nhisync audit verify, and restore the store from a backup",
			seq, covered)}
	case latest != nil && latest.LastHash != "" && latest.LastHash != hash:
		return &Error{Code: ECONFLICT, Message: fmt.Sprintf(
			"audit entry %d is not the one the latest checkpoint covers (edited?): run nhisync audit verify, and restore the store from a backup", seq)}
	}
	return nil
}
