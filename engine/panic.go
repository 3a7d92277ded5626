package engine

import (
	"fmt"
	"runtime/debug"
)

// panicked is a panic recovered on one of a pass's goroutines (a system's
// read, its staging), as an error: that system's read fails, loudly and
// by name, and the pass goes through its cleanup (the lease is released)
// instead of the process crashing. Its code is EINTERNAL.
type panicked struct {
	what  string
	value any
	stack []byte
}

func (p *panicked) Error() string { return fmt.Sprintf("%s panicked: %v", p.what, p.value) }

// recovered returns the error of a panic recover returned (v, not nil)
// in what; the stack is kept for the log.
func recovered(what string, v any) error {
	return &panicked{what: what, value: v, stack: debug.Stack()}
}
