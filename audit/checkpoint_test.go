package audit

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	tlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointSignsTheRFC6962Root(t *testing.T) {
	s := testSigner(t, "")
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100, 1000} { // 0: see TestCheckpointOfAnEmptyLogIsNil
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			log := newMemLog(n)
			clock := &nhisync.FakeClock{T: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
			cp, err := (&Checkpointer{Signer: s, Clock: clock}).Checkpoint(context.Background(), log)
			if err != nil {
				t.Fatal(err)
			}
			want := refRoot(log.leaves())
			if cp.Size != int64(n) || !bytes.Equal(cp.Root, want) || !cp.At.Equal(clock.T) {
				t.Fatalf("checkpoint size %d root %x at %v, want %d %x %v", cp.Size, cp.Root, cp.At, n, want, clock.T)
			}
			// Any transparency-dev client accepts it.
			body, _, _, err := tlog.ParseCheckpoint(cp.Note, s.Origin(), v)
			if err != nil {
				t.Fatalf("transparency-dev rejects the checkpoint: %v\n%s", err, cp.Note)
			}
			if body.Size != uint64(n) || !bytes.Equal(body.Hash, want) {
				t.Errorf("note says size %d root %x", body.Size, body.Hash)
			}
			if len(log.cps) != 1 || log.cps[0] != cp {
				t.Errorf("stored %d checkpoints, want the returned one", len(log.cps))
			}
		})
	}
}

func TestCheckpointSameSizeReturnsLatest(t *testing.T) {
	s := testSigner(t, "")
	log := newMemLog(10)
	first := mustCheckpoint(t, log, s)
	again := mustCheckpoint(t, log, s)
	if again != first || len(log.cps) != 1 {
		t.Errorf("second checkpoint of an unchanged log stored %d checkpoints", len(log.cps))
	}
	// Signed by another key: refuse rather than hand out its note.
	_, err := Checkpoint(context.Background(), log, testSigner(t, ""))
	wantCode(t, err, nhisync.ECONFLICT)
}

func TestCheckpointerIsIncremental(t *testing.T) {
	ctx := context.Background()
	s := testSigner(t, "")
	log := newMemLog(1000)
	c := &Checkpointer{Signer: s}
	if _, err := c.Checkpoint(ctx, log); err != nil {
		t.Fatal(err)
	}
	for _, added := range []int{1, 0, 7, 250} {
		log.add(added)
		log.read = 0
		cp, err := c.Checkpoint(ctx, log)
		if err != nil {
			t.Fatal(err)
		}
		// The entries added, and the last one hashed before, to make
		// sure the log still holds what was hashed.
		if want := int64(added) + 1; log.read != want {
			t.Errorf("after adding %d: read %d entries, want %d", added, log.read, want)
		}
		if want := refRoot(log.leaves()); cp.Size != int64(len(log.items)) || !bytes.Equal(cp.Root, want) {
			t.Errorf("after adding %d: size %d root %x, want %d %x", added, cp.Size, cp.Root, len(log.items), want)
		}
	}
	if len(log.cps) != 4 {
		t.Errorf("stored %d checkpoints, want 4 (one per growth)", len(log.cps))
	}
}

func TestCheckpointerStartsOverOnAnotherLog(t *testing.T) {
	ctx := context.Background()
	s := testSigner(t, "")
	c := &Checkpointer{Signer: s}
	a := newMemLog(50)
	if _, err := c.Checkpoint(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Another log, longer, with different entries.
	b := &memLog{}
	for range 60 {
		b.add(1)
		b.items[len(b.items)-1].e.Actor = "elsewhere"
	}
	b.reseal(0)
	cp, err := c.Checkpoint(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := refRoot(b.leaves()); !bytes.Equal(cp.Root, want) {
		t.Errorf("root %x, want %x: the kept range of another log was reused", cp.Root, want)
	}
}

func TestCheckpointRefusesADamagedLog(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(*memLog)
		want   string
	}{
		{"tail deleted", func(m *memLog) { m.items = m.items[:35] },
			"log has 35 entries but checkpoint signed at size 40 (tail deleted?)"},
		{"entry rewritten and resealed", func(m *memLog) {
			m.at(12).e.Actor = "mallory"
			m.reseal(11)
			m.add(5)
		}, "no longer matches the checkpoint signed at size 40"},
		{"entry edited", func(m *memLog) {
			m.at(12).e.Actor = "mallory"
			m.at(12).leaf = m.at(12).e.LeafBytes()
			m.add(5)
		}, "damaged at entry 12: its hash does not match its contents"},
		{"entry deleted", func(m *memLog) {
			m.items = append(m.items[:19], m.items[20:]...)
			m.add(2)
		}, "damaged at entry 20: expected entry 20, found entry 21"},
		{"chain broken", func(m *memLog) {
			m.at(30).e.PrevHash = m.at(28).e.Hash
			m.add(5)
		}, "damaged at entry 30: its prev_hash does not chain to entry 29"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := testSigner(t, "")
			log := newMemLog(40)
			mustCheckpoint(t, log, s)
			tt.tamper(log)
			_, err := Checkpoint(ctx, log, s)
			wantCode(t, err, nhisync.ECONFLICT)
			if !strings.Contains(nhisync.ErrorMessage(err), tt.want) {
				t.Errorf("message %q, want it to contain %q", nhisync.ErrorMessage(err), tt.want)
			}
			if len(log.cps) != 1 {
				t.Errorf("a checkpoint of the damaged log was stored")
			}
		})
	}
}

func TestCheckpointerRefusesARewriteBehindItsBack(t *testing.T) {
	ctx := context.Background()
	s := testSigner(t, "")
	log := newMemLog(40)
	c := &Checkpointer{Signer: s}
	if _, err := c.Checkpoint(ctx, log); err != nil {
		t.Fatal(err)
	}
	// Rewrite everything, then grow: the kept range no longer fits, the
	// rewritten log no longer hashes to the checkpoint.
	log.at(3).e.Actor = "mallory"
	log.reseal(2)
	log.add(3)
	_, err := c.Checkpoint(ctx, log)
	wantCode(t, err, nhisync.ECONFLICT)
}

func TestCheckpointNeedsASigner(t *testing.T) {
	_, err := Checkpoint(context.Background(), newMemLog(1), nil)
	wantCode(t, err, nhisync.EINVALID)
}

func TestParseCheckpoint(t *testing.T) {
	s := testSigner(t, "")
	log := newMemLog(9)
	cp := mustCheckpoint(t, log, s)
	got, err := ParseCheckpoint(cp.Note, s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 9 || !bytes.Equal(got.Root, cp.Root) {
		t.Errorf("parsed size %d root %x, want 9 %x", got.Size, got.Root, cp.Root)
	}

	other := testSigner(t, "")
	tests := []struct {
		name string
		note []byte
		key  string
		want string
	}{
		{"other key", cp.Note, other.VerifierKey(), "not signed by key " + other.Origin()},
		{"bad key", cp.Note, "not-a-key", "not in signed-note form"},
		{"edited root", bytes.Replace(cp.Note, []byte(b64(cp.Root)), []byte(b64(make([]byte, 32))), 1), s.VerifierKey(), "signature does not verify"},
		{"not a note", []byte("hello\n"), s.VerifierKey(), "not a valid signed note"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCheckpoint(tt.note, tt.key)
			wantCode(t, err, nhisync.EINVALID)
			if !strings.Contains(nhisync.ErrorMessage(err), tt.want) {
				t.Errorf("message %q, want it to contain %q", nhisync.ErrorMessage(err), tt.want)
			}
		})
	}
}

func TestCheckpointRefusesAHeadThatDisagrees(t *testing.T) {
	s := testSigner(t, "")
	m := newMemLog(8)
	for _, log := range []Log{headLog{m, 8, m.at(7).e.Hash}, headLog{m, 9, m.at(8).e.Hash}} {
		_, err := Checkpoint(context.Background(), log, s)
		wantCode(t, err, nhisync.ECONFLICT)
		if len(m.cps) != 0 {
			t.Fatal("a checkpoint was stored")
		}
	}
}

func TestCheckpointOfAnEmptyLogIsNil(t *testing.T) {
	s, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "k"), "")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := Checkpoint(context.Background(), &memLog{}, s)
	if err != nil || cp != nil {
		t.Fatalf("Checkpoint of an empty log = %v, %v; want nil, nil", cp, err)
	}
}
