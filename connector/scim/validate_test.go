package scim_test

import (
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/scim"
)

// TestSCIMValidate: bad settings are refused before anything is reached,
// with the setting named and how to fix it.
func TestSCIMValidate(t *testing.T) {
	t.Setenv("SCIM_EMPTY", "")
	for _, c := range []struct {
		settings nhisync.Settings
		want     string
	}{
		{nhisync.Settings{}, "url is required"},
		{nhisync.Settings{"url": "ftp://x"}, "not an http:// or https:// URL"},
		{nhisync.Settings{"url": "https://u:p@idp.example.com/scim/v2"}, "must not hold credentials"},
		{nhisync.Settings{"url": "https://idp.example.com/scim/v2", "token": "t", "username": "u", "password": "p"}, "not both"},
		{nhisync.Settings{"url": "https://idp.example.com/scim/v2", "username": "u"}, "username and password go together"},
		{nhisync.Settings{"url": "https://idp.example.com/scim/v2", "token": "env:SCIM_EMPTY"}, "SCIM_EMPTY is not set"},
		{nhisync.Settings{"url": "https://idp.example.com/scim/v2", "token": "file:no/such/file"}, "cannot be read"},
		{nhisync.Settings{"url": "https://idp.example.com/scim/v2", "resource": "Users/x"}, "one endpoint name"},
		{nhisync.Settings{"url": "https://idp.example.com/scim/v2", "page_size": 0}, "page_size must be"},
		{nhisync.Settings{"url": "https://idp.example.com/scim/v2", "timeout": "soon"}, "timeout \"soon\""},
		{nhisync.Settings{"url": "https://idp.example.com/scim/v2", "retries": 99}, "retries must be"},
	} {
		sys := userSystem(nil)
		sys.Settings = c.settings
		err := scim.Validate(sys, userKind())
		if err == nil {
			_, err = scim.New(sys, userKind())
		}
		if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "system idp") {
			t.Errorf("%v: got %v, want EINVALID naming the system and %q", c.settings, err, c.want)
		}
	}
}
