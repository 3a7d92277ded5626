package opa_test

import (
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/opa"
)

// TestOPAValidate: bad settings are refused before OPA is reached, with
// the setting named and how to fix it.
func TestOPAValidate(t *testing.T) {
	for _, c := range []struct {
		settings nhisync.Settings
		want     string
	}{
		{nhisync.Settings{"path": "nhi/accounts"}, "url is required"},
		{nhisync.Settings{"url": "localhost:8181", "path": "nhi/accounts"}, "not an http:// or https:// URL"},
		{nhisync.Settings{"url": "http://127.0.0.1:8181"}, "path is required"},
		{nhisync.Settings{"url": "http://127.0.0.1:8181", "path": "nhi//accounts"}, "empty or relative segment"},
		{nhisync.Settings{"url": "http://127.0.0.1:8181", "path": "nhi/../x"}, "empty or relative segment"},
		{nhisync.Settings{"url": "http://127.0.0.1:8181", "path": "nhi", "token": "env:NHISYNC_NO_SUCH_VAR"}, "NHISYNC_NO_SUCH_VAR is not set"},
	} {
		sys := system("x", nil)
		sys.Settings = c.settings
		err := opa.Validate(sys, kind())
		if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "system policy") {
			t.Errorf("%v: got %v, want EINVALID naming the system and %q", c.settings, err, c.want)
		}
	}
}
