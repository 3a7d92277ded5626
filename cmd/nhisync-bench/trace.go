package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/trace"
)

// passTrace is an execution trace of one pass (-trace), for go tool
// trace: where the pass's goroutines run, wait and sit in system calls.
// A CPU profile shows what burns CPU; a pass that leaves a core idle
// (the drain after a first pass's bulk window, whose outcome commits
// form one chain) needs the trace to show what its critical path waits
// for.
type passTrace struct {
	f    *os.File
	done bool
}

// startTrace starts tracing the process into path.
func startTrace(path string) (*passTrace, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-trace: %w: give a file in a directory that exists and that you may write to", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-trace %s: %w", path, err)
	}
	return &passTrace{f: f}, nil
}

// stop ends the trace and closes its file; stopping again does nothing.
// It returns the error of writing the file out.
func (t *passTrace) stop() error {
	if t == nil || t.done {
		return nil
	}
	t.done = true
	trace.Stop()
	err := errors.Join(t.f.Sync(), t.f.Close())
	if err != nil {
		return fmt.Errorf("-trace %s: %w", t.f.Name(), err)
	}
	return nil
}
