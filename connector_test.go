package nhisync_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nhisync/nhisync"
)

// closeCounter is a connector that only counts its closes.
type closeCounter struct {
	nhisync.Connector
	closed *int
}

func (c closeCounter) Close() error { *c.closed++; return nil }

// TestOpenConnectors: every system's connector opens, by name; when one
// cannot, those already opened are closed and the error names the system.
func TestOpenConnectors(t *testing.T) {
	closed := 0
	nhisync.RegisterDriver("test-open-ok", nhisync.Driver{Open: func(context.Context, *nhisync.System, *nhisync.Kind) (nhisync.Connector, error) {
		return closeCounter{closed: &closed}, nil
	}})
	nhisync.RegisterDriver("test-open-fails", nhisync.Driver{Open: func(context.Context, *nhisync.System, *nhisync.Kind) (nhisync.Connector, error) {
		return nil, errors.New("no such table")
	}})
	cfg := &nhisync.Config{SystemNames: []string{"a", "b"}, Systems: map[string]*nhisync.System{
		"a": {Name: "a", Connector: "test-open-ok"}, "b": {Name: "b", Connector: "test-open-ok"}}}
	conns, err := nhisync.OpenConnectors(t.Context(), cfg)
	if err != nil || len(conns) != 2 || conns["a"] == nil || conns["b"] == nil {
		t.Fatalf("OpenConnectors = %v, %v; want a and b", conns, err)
	}
	if err := nhisync.CloseConnectors(conns); err != nil || closed != 2 {
		t.Errorf("CloseConnectors: %v, %d closed; want 2", err, closed)
	}

	closed = 0
	cfg.Systems["b"].Connector = "test-open-fails"
	if _, err := nhisync.OpenConnectors(t.Context(), cfg); err == nil || err.Error() != "open b: no such table" || closed != 1 {
		t.Errorf("a failing open: %v, %d closed; want \"open b: no such table\" and a closed", err, closed)
	}
	cfg.Systems["b"].Connector = "not-built-in"
	_, err = nhisync.OpenConnectors(t.Context(), cfg)
	if nhisync.ErrorCode(err) != nhisync.EINVALID || closed != 2 {
		t.Errorf("a connector not in this build: %v, %d closed; want EINVALID and a closed", err, closed)
	}
}
