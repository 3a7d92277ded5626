//go:build !unix

package engine_test

import "time"

// processCPU is not measured here: benchmarks report zero CPU.
func processCPU() time.Duration { return 0 }
