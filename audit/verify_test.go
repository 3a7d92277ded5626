package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	tlog "github.com/transparency-dev/formats/log"
)

// signedLog returns a log of 40 entries with checkpoints signed by s at
// sizes 10, 25 and 40.
func signedLog(t *testing.T, s *Signer) *memLog {
	t.Helper()
	log := newMemLog(10)
	mustCheckpoint(t, log, s)
	log.add(15)
	mustCheckpoint(t, log, s)
	log.add(15)
	mustCheckpoint(t, log, s)
	return log
}

// cpAt returns the stored checkpoint of size n.
func (m *memLog) cpAt(n int64) *nhisync.Checkpoint {
	for _, c := range m.cps {
		if c.Size == n {
			return c
		}
	}
	panic("no checkpoint")
}

// flipSignature returns the note with the last byte of its signature
// changed: same key hash, invalid signature.
func flipSignature(t *testing.T, signed []byte) []byte {
	t.Helper()
	i := bytes.LastIndex(signed, []byte(" "))
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(signed[i+1:])))
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)-1] ^= 1
	return append(append(bytes.Clone(signed[:i+1]), base64.StdEncoding.EncodeToString(sig)...), '\n')
}

// forge returns a checkpoint of the log's first n entries signed by a key
// that takes the same name as s but is not s.
func forge(t *testing.T, log *memLog, n int64, s *Signer) *nhisync.Checkpoint {
	t.Helper()
	skey, err := generateKey(rand.Reader, s.Origin())
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	root := refRoot(log.leaves()[:n])
	signed, err := mallory.sign(tlog.Checkpoint{Origin: s.Origin(), Size: uint64(n), Hash: root}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return &nhisync.Checkpoint{Size: n, Root: root, Note: signed}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(t *testing.T, m *memLog, s *Signer) Log
		firstBad int64
		problem  string // the whole problem, or a prefix ending in "…"
		entries  int64  // checked and good
		cps      int    // checkpoints checked and good
	}{
		{name: "intact", entries: 40, cps: 3},
		// Issue 6 finding 9: an entry no checkpoint covers is itself
		// evidence of tampering.
		{name: "entries after the last checkpoint",
			tamper:   func(t *testing.T, m *memLog, s *Signer) Log { m.add(5); return m },
			firstBad: 41, problem: "entries 41 to 45 are not covered by any signed checkpoint: nhisync signs every entry in the transaction that appends it, so these were appended outside nhisync, or the checkpoints covering them were deleted",
			entries: 45, cps: 3},
		{name: "no checkpoints",
			tamper:   func(t *testing.T, m *memLog, s *Signer) Log { m.cps = nil; return m },
			firstBad: 1, problem: "entries 1 to 40 are not covered by any signed checkpoint: nhisync signs every entry in the transaction that appends it, so these were appended outside nhisync, or the checkpoints covering them were deleted",
			entries: 40},
		{name: "stored field edited",
			tamper:   func(t *testing.T, m *memLog, s *Signer) Log { m.at(17).e.Actor = "mallory"; return m },
			firstBad: 17, problem: "entry 17: stored actor differs from its hashed contents (edited?)", entries: 16, cps: 1},
		{name: "stored value edited",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.at(17).e.New = nhisync.Str("mallory@evil.example")
				return m
			},
			firstBad: 17, problem: "entry 17: stored new differs from its hashed contents (edited?)", entries: 16, cps: 1},
		{name: "leaf edited",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.at(17).e.Actor = "mallory"
				m.at(17).leaf = m.at(17).e.LeafBytes()
				return m
			},
			firstBad: 17, problem: "entry 17: hash does not match its contents (edited?)", entries: 16, cps: 1},
		{name: "entry resealed alone",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.at(17).e.Actor = "mallory"
				m.at(17).leaf = m.at(17).e.Seal(m.at(16).e.Hash)
				return m
			},
			firstBad: 18, problem: "entry 18: prev_hash does not chain to entry 17 (inserted, deleted or reordered?)", entries: 17, cps: 1},
		// Issue 6 finding 9: time never runs backwards.
		{name: "time runs backwards",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.at(17).e.Time = m.at(15).e.Time
				m.reseal(16)
				return m
			},
			firstBad: 17, problem: "entry 17: its time 2026-01-02T03:04:05.138456Z is before entry 16's, 2026-01-02T03:04:05.139456Z: time ran backwards (inserted, or written by a process that had lost its lease?)", entries: 16, cps: 1},
		{name: "suffix rewritten and resealed",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.at(17).e.Actor = "mallory"
				m.reseal(16)
				return m
			},
			firstBad: 11, problem: "checkpoint at size 25: entries 11 to 25 do not hash to the root it signed (changed after signing, or rewritten and signed again?)", entries: 25, cps: 1},
		{name: "suffix rewritten, only the latest checkpoint",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.at(17).e.Actor = "mallory"
				m.reseal(16)
				return latestOnly{m}
			},
			firstBad: 1, problem: "checkpoint at size 40: entries 1 to 40 do not hash to the root it signed (changed after signing, or rewritten and signed again?)", entries: 40},
		{name: "middle entry deleted",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.items = append(m.items[:16], m.items[17:]...)
				return m
			},
			firstBad: 17, problem: "entry 17: expected here, found entry 18 (deleted, inserted or reordered?)", entries: 16, cps: 1},
		{name: "middle entry deleted, rows renumbered",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.items = append(m.items[:16], m.items[17:]...)
				m.renumber()
				return m
			},
			firstBad: 17, problem: "entry 17: its hashed contents say entry 18 (inserted, deleted or reordered?)", entries: 16, cps: 1},
		{name: "first entry deleted",
			tamper:   func(t *testing.T, m *memLog, s *Signer) Log { m.items = m.items[1:]; m.renumber(); return m },
			firstBad: 1, problem: "entry 1: its hashed contents say entry 2…"},
		{name: "tail deleted",
			tamper:   func(t *testing.T, m *memLog, s *Signer) Log { m.items = m.items[:37]; return m },
			firstBad: 38, problem: "log has 37 entries but a checkpoint at size 40 is signed (tail deleted, or log rolled back?)", entries: 37, cps: 2},
		{name: "everything deleted",
			tamper:   func(t *testing.T, m *memLog, s *Signer) Log { m.items = nil; return m },
			firstBad: 1, problem: "log has 0 entries but a checkpoint at size 10 is signed (tail deleted, or log rolled back?)"},
		{name: "entry inserted",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				e := genEntry(17)
				e.Actor = "mallory"
				leaf := e.Seal(m.at(16).e.Hash)
				m.items = append(m.items[:16], append([]memItem{{e: e, leaf: leaf}}, m.items[16:]...)...)
				m.renumber()
				return m
			},
			firstBad: 18, problem: "entry 18: its hashed contents say entry 17 (inserted, deleted or reordered?)", entries: 17, cps: 1},
		{name: "entry inserted with a duplicate seq",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				e := genEntry(17)
				e.Actor = "mallory"
				leaf := e.Seal(m.at(16).e.Hash)
				m.items = append(m.items[:17], append([]memItem{{e: e, leaf: leaf}}, m.items[17:]...)...)
				return m
			},
			firstBad: 18, problem: "entry 18: expected here, found entry 17 (deleted, inserted or reordered?)", entries: 17, cps: 1},
		{name: "pair reordered",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.items[16], m.items[17] = m.items[17], m.items[16]
				return m
			},
			firstBad: 17, problem: "entry 17: expected here, found entry 18 (deleted, inserted or reordered?)", entries: 16, cps: 1},
		{name: "pair reordered, rows renumbered",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.items[16], m.items[17] = m.items[17], m.items[16]
				m.renumber()
				return m
			},
			firstBad: 17, problem: "entry 17: its hashed contents say entry 18 (inserted, deleted or reordered?)", entries: 16, cps: 1},
		{name: "checkpoint signature forged",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.cpAt(25).Note = flipSignature(t, m.cpAt(25).Note)
				return m
			},
			problem: "checkpoint at size 25: signature does not verify with the verifier key (forged?)", entries: 25, cps: 1},
		{name: "checkpoint signed by another key",
			tamper:  func(t *testing.T, m *memLog, s *Signer) Log { m.cps[1] = forge(t, m, 25, s); return m },
			problem: "checkpoint at size 25: not signed by key " + "…", entries: 25, cps: 1},
		{name: "checkpoint note edited",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				c := m.cpAt(25)
				c.Note = bytes.Replace(c.Note, []byte("\n25\n"), []byte("\n24\n"), 1)
				return m
			},
			problem: "checkpoint at size 25: signature does not verify with the verifier key (forged?)", entries: 25, cps: 1},
		{name: "checkpoint stored root edited",
			tamper:  func(t *testing.T, m *memLog, s *Signer) Log { m.cpAt(25).Root = make([]byte, 32); return m },
			problem: "checkpoint at size 25: its stored root differs from the root its note signed (edited?)", entries: 25, cps: 1},
		{name: "forged checkpoint beyond the log",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				longer := newMemLog(50)
				m.cps = append(m.cps, forge(t, longer, 50, s))
				return m
			},
			problem: "checkpoint at size 50: not signed by key …", entries: 40, cps: 3},
		// Every stored checkpoint is checked, not only the latest, and
		// each names the one it was signed after (issue 5, observation 5).
		{name: "older checkpoint's note overwritten with garbage",
			tamper:  func(t *testing.T, m *memLog, s *Signer) Log { m.cpAt(10).Note = []byte("garbage"); return m },
			problem: "checkpoint at size 10: not a valid signed note (edited?)"},
		{name: "middle checkpoint deleted",
			tamper:  func(t *testing.T, m *memLog, s *Signer) Log { m.cps = slices.Delete(m.cps, 1, 2); return m },
			problem: "checkpoint at size 40: it was signed after a checkpoint at size 25, which is not stored (deleted?)", entries: 40, cps: 1},
		{name: "first checkpoint deleted",
			tamper:  func(t *testing.T, m *memLog, s *Signer) Log { m.cps = m.cps[1:]; return m },
			problem: "checkpoint at size 25: it was signed after a checkpoint at size 10, which is not stored (deleted?)", entries: 25},
		{name: "two checkpoints reordered",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				a, b := m.cpAt(10), m.cpAt(25)
				a.Root, b.Root = b.Root, a.Root
				a.Note, b.Note = b.Note, a.Note
				return m
			},
			problem: "checkpoint at size 10: stored at size 10, but its signed note is for size 25 (moved or reordered?)"},
		{name: "older checkpoint signed by another key",
			tamper:  func(t *testing.T, m *memLog, s *Signer) Log { m.cps[0] = forge(t, m, 10, s); return m },
			problem: "checkpoint at size 10: not signed by key …"},
		{name: "checkpoint names its predecessor with another root",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				other := &nhisync.Checkpoint{Size: 25, Root: make([]byte, 32)}
				body := append(tlog.Checkpoint{Origin: s.Origin(), Size: 40, Hash: m.cpAt(40).Root}.Marshal(), prevLine(other)...)
				signed, err := s.sign(body)
				if err != nil {
					t.Fatal(err)
				}
				m.cpAt(40).Note = signed
				return m
			},
			problem: "checkpoint at size 40: it was signed after a checkpoint at size 25 with another root than the one stored (log forked, or checkpoint replaced?)", entries: 40, cps: 2},
		{name: "checkpoints signed before they named a predecessor",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				for _, c := range m.cps {
					signed, err := s.sign(tlog.Checkpoint{Origin: s.Origin(), Size: uint64(c.Size), Hash: c.Root}.Marshal())
					if err != nil {
						t.Fatal(err)
					}
					c.Note = signed
				}
				return m
			},
			entries: 40, cps: 3},
		{name: "checkpoint with a malformed prev line",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				body := append(tlog.Checkpoint{Origin: s.Origin(), Size: 40, Hash: m.cpAt(40).Root}.Marshal(), "prev 41 AAAA\n"...)
				signed, err := s.sign(body)
				if err != nil {
					t.Fatal(err)
				}
				m.cpAt(40).Note = signed
				return m
			},
			problem: `checkpoint at size 40: signed, but its "prev" line is malformed`, entries: 40, cps: 2},
		{name: "rewritten log with a forged checkpoint",
			tamper: func(t *testing.T, m *memLog, s *Signer) Log {
				m.at(30).e.Actor = "mallory"
				m.reseal(29)
				m.cps[2] = forge(t, m, 40, s)
				return m
			},
			problem: "checkpoint at size 40: not signed by key …", entries: 40, cps: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSigner(t, "")
			m := signedLog(t, s)
			var log Log = m
			if tt.tamper != nil {
				log = tt.tamper(t, m, s)
			}
			r, err := Verify(context.Background(), log, s.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			if r.OK != (tt.problem == "") || r.FirstBad != tt.firstBad || !problemIs(r.Problem, tt.problem) {
				t.Errorf("report ok=%v first_bad=%d problem=%q\nwant ok=%v first_bad=%d problem=%q",
					r.OK, r.FirstBad, r.Problem, tt.problem == "", tt.firstBad, tt.problem)
			}
			if tt.entries != 0 && r.Entries != tt.entries || r.Checkpoints != tt.cps {
				t.Errorf("checked %d entries and %d checkpoints, want %d and %d", r.Entries, r.Checkpoints, tt.entries, tt.cps)
			}
			if r.OK {
				if want := b64(refRoot(m.leaves())); r.Root != want {
					t.Errorf("root %s, want %s", r.Root, want)
				}
				if want := m.cps; len(want) > 0 && r.Signed != want[len(want)-1].Size {
					t.Errorf("signed %d, want %d", r.Signed, want[len(want)-1].Size)
				}
			}
		})
	}
}

// problemIs matches a problem exactly, or by prefix when want ends in "…".
func problemIs(got, want string) bool {
	if p, ok := strings.CutSuffix(want, "…"); ok {
		return strings.HasPrefix(got, p)
	}
	return got == want
}

func TestVerifyEmptyLog(t *testing.T) {
	s := testSigner(t, "")
	log := &memLog{}
	mustCheckpoint(t, log, s)
	r, err := Verify(context.Background(), log, s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Entries != 0 || r.Checkpoints != 0 || r.Root != b64(refRoot(nil)) {
		t.Errorf("report %+v, want ok with the empty root and no checkpoint (nothing to sign)", r)
	}
}

func TestVerifyHeadMismatch(t *testing.T) {
	s := testSigner(t, "")
	m := signedLog(t, s)
	m.add(3)
	tests := []struct {
		name    string
		log     Log
		problem string
	}{
		{"head longer than the entries", headLog{m, 45, m.at(43).e.Hash}, "log has 43 entries but its head says 45 (tail deleted?)"},
		{"head hash differs", headLog{m, 43, m.at(42).e.Hash}, "entry 43: hash differs from the one the log's head records (edited?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Verify(context.Background(), tt.log, s.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.Problem != tt.problem {
				t.Errorf("problem %q, want %q", r.Problem, tt.problem)
			}
		})
	}
}

// headLog reports a head of its own, as a store that keeps it apart from
// its entries may.
type headLog struct {
	*memLog
	size int64
	hash string
}

func (h headLog) AuditHead(context.Context) (int64, string, error) { return h.size, h.hash, nil }

func TestVerifyRefusesABadKey(t *testing.T) {
	_, err := Verify(context.Background(), newMemLog(3), "nhisync-audit+00000000+AAAA")
	wantCode(t, err, nhisync.EINVALID)
}

func TestVerifyStopsWhenCanceled(t *testing.T) {
	s := testSigner(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Verify(ctx, newMemLog(10), s.VerifierKey())
	wantCode(t, err, nhisync.EUNAVAIL)
}

func TestVerifyNamesTheEditedField(t *testing.T) {
	edits := map[string]func(e *nhisync.AuditEntry){
		"time":      func(e *nhisync.AuditEntry) { e.Time = e.Time.Add(1) },
		"actor":     func(e *nhisync.AuditEntry) { e.Actor = "mallory" },
		"action":    func(e *nhisync.AuditEntry) { e.Action = nhisync.ActApprovalGranted },
		"kind":      func(e *nhisync.AuditEntry) { e.Kind = "api_key" },
		"record_id": func(e *nhisync.AuditEntry) { e.RecordID++ },
		"record":    func(e *nhisync.AuditEntry) { e.Record = "service_account/aws/other" },
		"field":     func(e *nhisync.AuditEntry) { e.Field = "policy_state" },
		"system":    func(e *nhisync.AuditEntry) { e.System = "ldap" },
		"old":       func(e *nhisync.AuditEntry) { e.Old = nhisync.Value{} },
		"new":       func(e *nhisync.AuditEntry) { e.New = nhisync.SetOf("admin") },
		"reason":    func(e *nhisync.AuditEntry) { e.Reason = "manual" },
		"prev_hash": func(e *nhisync.AuditEntry) { e.PrevHash = "" },
	}
	for field, edit := range edits {
		t.Run(field, func(t *testing.T) {
			s := testSigner(t, "")
			m := signedLog(t, s)
			edit(&m.at(5).e)
			r, err := Verify(context.Background(), m, s.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			want := "entry 5: stored " + field + " differs from its hashed contents (edited?)"
			if r.OK || r.FirstBad != 5 || r.Problem != want {
				t.Errorf("first_bad=%d problem=%q, want 5 %q", r.FirstBad, r.Problem, want)
			}
		})
	}
}

// failingLog fails every read with err.
type failingLog struct {
	*memLog
	err error
}

func (f failingLog) ScanAudit(context.Context, int64, int64, func(*nhisync.AuditEntry, []byte) error) error {
	return f.err
}

func TestStoreErrorsKeepTheirCode(t *testing.T) {
	ctx := context.Background()
	s := testSigner(t, "")
	m := newMemLog(5)
	mustCheckpoint(t, m, s)
	tests := []struct {
		err  error
		code string
	}{
		{errors.New("disk I/O error"), nhisync.EINTERNAL},
		{nhisync.Errorf(nhisync.EUNAVAIL, "database is locked"), nhisync.EUNAVAIL},
	}
	for _, tt := range tests {
		log := failingLog{m, tt.err}
		_, err := Verify(ctx, log, s.VerifierKey())
		wantCode(t, err, tt.code)
		_, err = Checkpoint(ctx, log, s)
		wantCode(t, err, tt.code)
		_, err = InclusionProof(ctx, log, 1, nil)
		wantCode(t, err, tt.code)
		_, err = ConsistencyProof(ctx, log, 1, 2)
		wantCode(t, err, tt.code)
		wantCode(t, Export(ctx, log, &bytes.Buffer{}, 0, 0), tt.code)
	}
}
