package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
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
