package engine

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/nhisync/nhisync"
)

// keyAsker is a store that answers RecordIDsByKey from keys and counts
// how often each key is asked.
type keyAsker struct {
	nhisync.Store
	keys  map[string]int64
	asked map[string]int
	calls int
	fail  bool
}

func (s *keyAsker) RecordIDsByKey(_ context.Context, _ string, keys []string) (map[string]int64, error) {
	s.calls++
	if len(keys) > lookupChunk {
		return nil, errors.New("asked for more than a chunk")
	}
	if s.fail {
		return nil, errors.New("store down")
	}
	out := map[string]int64{}
	for _, k := range keys {
		s.asked[k]++
		if id, ok := s.keys[k]; ok {
			out[k] = id
		}
	}
	return out, nil
}

// TestRecIndexFetchAsksEachKeyOnce: fetch, given many keys, some repeated
// and some known, asks the store about each unknown key once, in chunks,
// and then knows every one, held or free; a failed look-up leaves the key
// unknown, never free.
func TestRecIndexFetchAsksEachKeyOnce(t *testing.T) {
	cfg := &nhisync.Config{KindNames: []string{"sa"}, Kinds: map[string]*nhisync.Kind{"sa": {Name: "sa"}}}
	st := &keyAsker{keys: map[string]int64{}, asked: map[string]int{}}
	x := newRecIndex(st, cfg)
	x.records = 100000
	var keys []string
	const n = 2*lookupChunk + 5
	for i := range n {
		k := "aws\x1fbot-" + strconv.Itoa(i)
		if i%3 == 0 {
			st.keys[k] = int64(i + 1)
		}
		keys = append(keys, k, k)
	}
	x.set("sa", "aws\x1fbot-1", 7) // known before: not asked
	if err := x.fetch(context.Background(), "sa", keys); err != nil {
		t.Fatal(err)
	}
	if st.calls != 3 {
		t.Errorf("%d look-ups for %d keys, want 3", st.calls, n-1)
	}
	if len(st.asked) != n-1 {
		t.Errorf("%d keys asked, want %d", len(st.asked), n-1)
	}
	for k, c := range st.asked {
		if c != 1 {
			t.Fatalf("key %q asked %d times, want once", k, c)
		}
	}
	for i := range n {
		k := "aws\x1fbot-" + strconv.Itoa(i)
		id, ok, known := x.known("sa", k)
		want, held := st.keys[k]
		if i == 1 {
			want, held = 7, true
		}
		if !known || ok != held || id != want {
			t.Fatalf("known(%q) = %d, %v, %v; want %d, %v, true", k, id, ok, known, want, held)
		}
	}
	st.fail = true
	if _, _, err := x.owner(context.Background(), "sa", "aws\x1fnew"); err == nil {
		t.Fatal("owner with the store down: no error")
	}
	if _, _, known := x.known("sa", "aws\x1fnew"); known {
		t.Fatal("a key whose look-up failed reads as known")
	}
}

// BenchmarkRecIndexFetch20k: fetch of 20,000 keys (the strays a quiet pass
// restages at a million records), each twice, store look-ups answered from
// memory.
func BenchmarkRecIndexFetch20k(b *testing.B) {
	cfg := &nhisync.Config{KindNames: []string{"sa"}, Kinds: map[string]*nhisync.Kind{"sa": {Name: "sa"}}}
	var keys []string
	for i := range 20000 {
		k := "aws\x1fservice-account-" + strconv.Itoa(1000000+i)
		keys = append(keys, k, k)
	}
	for b.Loop() {
		st := &keyAsker{keys: map[string]int64{}, asked: map[string]int{}}
		x := newRecIndex(st, cfg)
		if err := x.fetch(context.Background(), "sa", keys); err != nil {
			b.Fatal(err)
		}
	}
}
