//go:build !unix

package storetest

import "time"

// ProcessCPU is not measured on this platform.
func ProcessCPU() time.Duration { return 0 }

// ThreadCPU is not measured on this platform.
func ThreadCPU() time.Duration { return 0 }
