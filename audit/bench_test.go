package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nhisync/nhisync"
)

// benchLogs caches generated logs: sealing a million entries takes
// seconds, and every benchmark only reads them.
var benchLogs sync.Map // int → *memLog

func benchLog(b *testing.B, n int) *memLog {
	b.Helper()
	if n >= 1_000_000 && testing.Short() {
		b.Skip("a million entries: skipped with -short")
	}
	if m, ok := benchLogs.Load(n); ok {
		return m.(*memLog)
	}
	m := newMemLog(n)
	benchLogs.Store(n, m)
	return m
}

// BenchmarkCheckpoint measures a checkpoint from scratch: every entry
// streamed, its leaf hashed, the chain checked and the root computed.
func BenchmarkCheckpoint(b *testing.B) {
	s := testSigner(b, "")
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			log := benchLog(b, n)
			ctx := context.Background()
			for b.Loop() {
				log.cps = nil
				if _, err := Checkpoint(ctx, log, s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}

// BenchmarkCheckpointerIncremental measures a checkpoint after 1,000 new
// entries on top of 100,000 with a kept Checkpointer.
func BenchmarkCheckpointerIncremental(b *testing.B) {
	s := testSigner(b, "")
	ctx := context.Background()
	log := newMemLog(100_000)
	c := &Checkpointer{Signer: s}
	if _, err := c.Checkpoint(ctx, log); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		log.add(1000)
		b.StartTimer()
		if _, err := c.Checkpoint(ctx, log); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures a full verification: every leaf hashed and
// decoded, the chain and the fields checked, every checkpoint checked.
func BenchmarkVerify(b *testing.B) {
	s := testSigner(b, "")
	for _, n := range []int{100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			log := benchLog(b, n)
			ctx := context.Background()
			log.cps = nil
			if _, err := Checkpoint(ctx, log, s); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				r, err := Verify(ctx, log, s.VerifierKey())
				if err != nil || !r.OK {
					b.Fatalf("%v %+v", err, r)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}

// BenchmarkInclusionProof measures one proof in a 100,000-entry log.
func BenchmarkInclusionProof(b *testing.B) {
	s := testSigner(b, "")
	log := benchLog(b, 100_000)
	ctx := context.Background()
	log.cps = nil
	cp, err := Checkpoint(ctx, log, s)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := InclusionProof(ctx, log, 31_337, cp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublish measures publishing a first pass's held checkpoints
// at 1M NHIs (2,000, one per commit of its bulk window) to audit.publish:
// each in a Publish of its own (an open, a write and an fsync each, as
// EndBulk did), and all in one Publish (one append, one fsync).
func BenchmarkPublish(b *testing.B) {
	const held = 2000
	s := testSigner(b, "")
	n, err := NewNotary(s, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	var prev *nhisync.Checkpoint
	cps := make([]*nhisync.Checkpoint, held)
	for i := range cps {
		cp, err := n.Extend(prev, [][]byte{nhisync.LeafHash(fmt.Appendf(nil, "entry %d", i))})
		if err != nil {
			b.Fatal(err)
		}
		cps[i], prev = cp, cp
	}
	for _, together := range []bool{false, true} {
		name := "each"
		if together {
			name = "together"
		}
		b.Run(name, func(b *testing.B) {
			publish := filepath.Join(b.TempDir(), "checkpoints.txt")
			n, err := NewNotary(s, publish, nil)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if together {
					if err := n.Publish(cps...); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for _, cp := range cps {
					if err := n.Publish(cp); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
