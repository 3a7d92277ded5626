package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/nhisync/nhisync"
)

// TestMemoryLimitApplies: memory_limit becomes the runtime's soft memory
// limit, unless GOMEMLIMIT is set.
func TestMemoryLimitApplies(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "1GiB")
	applyMemoryLimit(&nhisync.Config{MemoryLimit: 512 << 20})
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("with GOMEMLIMIT set, the limit became %d", got)
	}
	t.Setenv("GOMEMLIMIT", "")
	applyMemoryLimit(&nhisync.Config{})
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("without memory_limit, the limit became %d", got)
	}
	applyMemoryLimit(&nhisync.Config{MemoryLimit: 512 << 20})
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Fatalf("limit %d, want %d", got, 512<<20)
	}
}
