// Package storetest is the conformance suite of nhisync.Store: every store
// (the embedded SQLite one, PostgreSQL) runs Run from its own tests and the
// benchmarks below from its own benchmarks, so that they behave alike and
// can be compared.
//
// What the suite holds a store to, beyond the interface's comments:
//   - values, times (to the nanosecond) and every member of records, links
//     and items round-trip; nil and empty maps or slices may differ;
//   - a link's FieldState.Report pointing at a zero Value stays non-nil;
//   - LoadRecords returns records in the order asked, each once;
//   - list queries (conflicts, quarantine, approvals) are ordered by ID;
//     OutboxWrites by NextAt then ID;
//   - a failed Commit leaves nothing behind, audit entries included;
//   - audit seqs run from 1 without gaps and chain by PrevHash;
//   - a scan's callback may use the store, commits included;
//   - NewIDs ranges never overlap, whatever the concurrency;
//   - two live outbox claims never hold the same write, whatever the
//     concurrency, and a commit under a claim that lost a write is refused;
//   - a store with a bulk window (nhisync.BulkLoader) reads exactly inside
//     it, holds its keys again after EndBulk, names what broke the
//     window's contract, and finishes a window a dead process left open
//     when it is opened again (RunReopen).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nhisync/nhisync"
)

// RawExecer is an optional interface of a store: it runs SQL behind the
// store's back. The suite uses it to show that the audit log refuses UPDATE
// and DELETE (the table is named audit and has columns seq and hash); a
// store without it skips that test.
type RawExecer interface {
	ExecRaw(ctx context.Context, query string, args ...any) error
}

// Run runs the suite. open must return a new, empty store for each call and
// arrange for it to be closed when the test ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) nhisync.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s nhisync.Store)
	}{
		{"RecordRoundTrip", testRecordRoundTrip},
		{"RecordMatchKeyUnique", testRecordMatchKeyUnique},
		{"ScanRecordHeads", testScanRecordHeads},
		{"RecordKeys", testRecordKeys},
		{"RecordIDsByKey", testRecordIDsByKey},
		{"ScanRecords", testScanRecords},
		{"LoadRecordsAttachesWork", testLoadRecordsAttachesWork},
		{"LinkRoundTrip", testLinkRoundTrip},
		{"LinkChangesWritten", testLinkChangesWritten},
		{"LinksVersion", testLinksVersion},
		{"ScanLinks", testScanLinks},
		{"ScanCallbackUsesStore", testScanCallbackUsesStore},
		{"Conflicts", testConflicts},
		{"QuarantineItems", testQuarantineItems},
		{"Approvals", testApprovals},
		{"Outbox", testOutbox},
		{"OutboxClaims", testOutboxClaims},
		{"OutboxClaimsConcurrent", testOutboxClaimsConcurrent},
		{"SystemsAndMeta", testSystemsAndMeta},
		{"CommitEmpty", testCommitEmpty},
		{"CommitAtomicity", testCommitAtomicity},
		{"NewIDs", testNewIDs},
		{"NewIDsConcurrent", testNewIDsConcurrent},
		{"ConcurrentUse", testConcurrentUse},
		{"AuditSealing", testAuditSealing},
		{"ScanAuditRanges", testScanAuditRanges},
		{"AuditByRecord", testAuditByRecord},
		{"AuditAppendOnly", testAuditAppendOnly},
		{"Checkpoints", testCheckpoints},
		{"Leases", testLeases},
		{"LeaseFence", testLeaseFence},
		{"Tokens", testTokens},
		{"BulkLoad", testBulkLoad},
		{"BulkKeysBack", testBulkKeysBack},
		{"BulkRecordLinks", testBulkRecordLinks},
		{"BulkNamesADuplicate", testBulkNamesADuplicate},
		{"BulkNamesADuplicateRecord", testBulkNamesADuplicateRecord},
		{"BulkNamesALinkWithoutItsRecord", testBulkNamesALinkWithoutItsRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// t0 is the suite's base time: nanoseconds included, so a store that
// rounds shows it.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)

// at returns t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// cmpOpts compare what a store returns with what went in: values by
// Value.Equal, times by time.Time.Equal (cmp's default for types with an
// Equal method), nil and empty maps and slices alike.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b nhisync.Value) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
	// What a store kept of a link it loaded is its own (Link.Stored).
	cmpopts.IgnoreFields(nhisync.Link{}, "Stored"),
}

// sortedRecord orders a record's attached lists so a comparison does not
// depend on the order a store returns them in.
var sortedRecord = cmp.Options{
	cmpopts.SortSlices(func(a, b *nhisync.Link) bool {
		return a.System < b.System || a.System == b.System && a.ExternalID < b.ExternalID
	}),
}

func diff(want, got any) string { return cmp.Diff(want, got, cmpOpts, sortedRecord) }

// diffMany compares long lists: keys in full (none missing, none twice,
// none extra), whole elements on a sample, since go-cmp takes about a
// millisecond per element and the round-trip tests compare every member.
func diffMany[T any](want, got []T, key func(T) string) string {
	keys := func(xs []T) []string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = key(x)
		}
		slices.Sort(out)
		return out
	}
	if d := cmp.Diff(keys(want), keys(got)); d != "" {
		return "keys differ:\n" + d
	}
	byKey := make(map[string]T, len(got))
	for _, g := range got {
		byKey[key(g)] = g
	}
	for i := 0; i < len(want); i += 97 {
		if d := diff(want[i], byKey[key(want[i])]); d != "" {
			return key(want[i]) + ":\n" + d
		}
	}
	return ""
}

func linkKey(l *nhisync.Link) string {
	return fmt.Sprintf("%s/%s %s %d", l.System, l.ExternalID, l.Status, l.RecordID)
}

func recordKey(r *nhisync.Record) string { return fmt.Sprintf("%d %s", r.ID, r.Name()) }

func ctxOf(t *testing.T) context.Context { return t.Context() }

// commit commits b and fails the test on error.
func commit(t *testing.T, s nhisync.Store, b *nhisync.Batch) {
	t.Helper()
	if err := s.Commit(ctxOf(t), b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// newIDs reserves n IDs and returns them.
func newIDs(t *testing.T, s nhisync.Store, n int) []int64 {
	t.Helper()
	first, err := s.NewIDs(ctxOf(t), n)
	if err != nil {
		t.Fatalf("NewIDs(%d): %v", n, err)
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = first + int64(i)
	}
	return ids
}

// wantCode fails the test unless err is an *nhisync.Error with code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var e *nhisync.Error
	switch {
	case err == nil:
		t.Errorf("%s: got no error, want %s", what, code)
	case !errors.As(err, &e):
		t.Errorf("%s: got %T %v, want *nhisync.Error with code %s", what, err, err, code)
	case e.Code != code:
		t.Errorf("%s: got code %q (%v), want %q", what, e.Code, err, code)
	}
}

// record returns a golden record with a field of every shape.
func record(id int64, kind, name string) *nhisync.Record {
	return &nhisync.Record{
		ID:       id,
		Kind:     kind,
		Key:      nhisync.DisplayKey([]string{"aws", name}),
		MatchKey: nhisync.NormalizeKey([]string{"aws", name}),
		Fields: map[string]*nhisync.Golden{
			"name":     {Value: nhisync.Str(name), Source: "idp", Rule: "priority", At: at(1)},
			"platform": {Value: nhisync.Str("aws"), Source: "idp", Rule: "priority", At: at(1)},
			"owner": {Value: nhisync.Str("ana@example.com"), Source: "cmdb", Actor: "ana", Rule: "authority",
				At: at(2), SourceTime: at(-30)},
			"entitlements": {Value: nhisync.SetOf("s3:read", "kms:decrypt"), Source: "person:bo", Rule: "merge", At: at(3)},
			"last_rotated": {Value: nhisync.Str(nhisync.FormatTime(at(-3600))), Source: "idp", Rule: "priority", At: at(4)},
			// A value that was cleared keeps its provenance.
			"application": {Value: nhisync.Value{}, Source: "cmdb", Rule: "priority", At: at(5)},
			"labels":      {Value: nhisync.SetOf(), Source: "catalog", Rule: "merge", At: at(5)},
			"note":        {Value: nhisync.Str("naïve \"quoted\" \\ tab\t line\n \x01 ✓"), Source: "catalog", Rule: "latest", At: at(6)},
		},
		Created: at(0),
		Updated: at(6),
	}
}

// link returns a link of system with a field state of every shape.
func link(system, ext string, recordID int64, status nhisync.LinkStatus) *nhisync.Link {
	zero := nhisync.Value{}
	refused := nhisync.Str("bo@example.com")
	l := &nhisync.Link{
		System:     system,
		ExternalID: ext,
		RecordID:   recordID,
		Status:     status,
		Hash:       []byte{0, 1, 2, 3, 254, 255, byte(len(ext))},
		Fields: map[string]*nhisync.FieldState{
			"name": {Shadow: nhisync.Str(ext), Asserted: nhisync.Str(ext), Since: at(1)},
			"owner": {Shadow: nhisync.Str("ana@example.com"), Asserted: nhisync.Str("cy@example.com"),
				Since: at(2), SourceTime: at(-5), Actor: "cy", Report: &refused},
			"entitlements": {Shadow: nhisync.SetOf("s3:read"), Asserted: nhisync.SetOf("s3:read", "kms:decrypt"), Since: at(3)},
			// Refused against an empty golden value: Report points at zero.
			"lifecycle": {Asserted: nhisync.Str("active"), Since: at(4), Report: &zero},
			"labels":    {},
		},
		FirstSeen: at(0),
		SeenAt:    at(10),
		Modified:  at(-7),
	}
	if status == nhisync.LinkGone {
		l.GoneAt = at(11)
	}
	return l
}

// audit returns an audit entry about record.
func audit(recordID int64, action, field string, old, new nhisync.Value) *nhisync.AuditEntry {
	return &nhisync.AuditEntry{
		Time: at(int(recordID)), Actor: "idp", Action: action, Kind: "service_account",
		RecordID: recordID, Record: "service_account/aws/bot", Field: field, System: "idp",
		Old: old, New: new, Reason: "priority",
	}
}

// errStop is returned by callbacks to stop a scan early.
var errStop = errors.New("storetest: stop")

// names formats record names for messages.
func names(rs []*nhisync.Record) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name())
	}
	return strings.Join(out, ", ")
}
