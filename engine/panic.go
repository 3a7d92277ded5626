package engine

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/nhisync/nhisync"
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

// logPanic logs err with its value and stack when it is a recovered
// panic (a bug to report, which the stack locates), its texts scrubbed
// by scrub.
func (e *Engine) logPanic(err error, scrub func(string) string, args ...any) {
	var pe *panicked
	if errors.As(err, &pe) {
		e.log.Error(pe.what+" panicked", append(args, "panic", scrub(fmt.Sprint(pe.value)), "stack", string(pe.stack))...)
	}
}

// scrubber returns what takes conn's credentials out of a text: its
// nhisync.Scrubber, the same scrubbing its own errors get. A panic's
// value is no error the connector worded, and may quote a DSN or a
// token it holds.
func scrubber(conn nhisync.Connector) func(string) string {
	if s, ok := conn.(nhisync.Scrubber); ok {
		return s.Scrub
	}
	return func(s string) string { return s }
}
