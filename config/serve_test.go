package config

import (
	"strings"
	"testing"
	"time"
)

const serveBase = `version: 1
kinds:
  thing:
    match: [name]
    fields: { name: { type: string } }
`

func TestServeSettings(t *testing.T) {
	cfg, err := Parse([]byte(serveBase), "n.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Reconcile != time.Hour || cfg.Serve.OIDC != nil {
		t.Errorf("defaults: reconcile %v, oidc %v", cfg.Reconcile, cfg.Serve.OIDC)
	}
	env := func(k string) (string, bool) { return "s3cret", k == "OIDC_SECRET" }
	cfg, err = Parse([]byte(serveBase+`reconcile: 15m
serve:
  oidc:
    issuer: http://127.0.0.1:9998
    client_id: nhisync
    client_secret: ${OIDC_SECRET}
`), "n.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Serve.OIDC
	if cfg.Reconcile != 15*time.Minute || o == nil || o.Issuer != "http://127.0.0.1:9998" || o.ClientSecret != "s3cret" || o.RolesClaim != DefaultRolesClaim {
		t.Errorf("reconcile %v, oidc %+v", cfg.Reconcile, o)
	}
	for text, want := range map[string]string{
		"reconcile: 0s\n":                  "n.yaml:6: reconcile: \"0s\" is not a positive duration",
		"reconcile: 10ms\n":                "n.yaml:6: reconcile: a full pass at most every 10ms is too often",
		"serve: { oidc: { issuer: x } }\n": "serve.oidc.client_id: missing",
		"serve: { odic: {} }\n":            `unknown key "odic"; did you mean "oidc"?`,
		"serve: { oidc: { issuer: ftp://x, client_id: a, client_secret: b } }\n":           "serve.oidc.issuer: \"ftp://x\" is not an http(s) URL",
		"serve: { oidc: { issuer: https://x, client_id: a, client_secret: '${NOPE}' } }\n": "NOPE",
	} {
		_, err := Parse([]byte(serveBase+text), "n.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}
