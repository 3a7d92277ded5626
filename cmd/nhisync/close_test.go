package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// closeFails is a connector whose Close fails.
type closeFails struct{ nhisync.Connector }

func (closeFails) Close() error { return errors.New("flush refused") }

// A failed close is said, naming the system, instead of being dropped:
// the command that otherwise succeeded exits 1.
func TestCloseFailureIsSaid(t *testing.T) {
	a := &app{conns: map[string]nhisync.Connector{"cmdb": closeFails{}}}
	err := a.Close()
	if err == nil || !strings.Contains(err.Error(), "closing system cmdb: flush refused") {
		t.Fatalf("Close = %v, want the cmdb failure named", err)
	}
	if code := nhisync.ErrorCode(err); code != nhisync.EINTERNAL {
		t.Fatalf("code %q, want %q", code, nhisync.EINTERNAL)
	}
	if err := (&app{conns: map[string]nhisync.Connector{}}).Close(); err != nil {
		t.Fatalf("Close of nothing = %v", err)
	}
}
