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
	for text, want := range map[string]int64{"": 0, "memory_limit: 2GiB\n": 2 << 30, "memory_limit: 536870912\n": 512 << 20, "memory_limit: 1.5 GB\n": 1_500_000_000} {
		cfg, err := Parse([]byte(serveBase+text), "n.yaml", nil)
		if err != nil || cfg.MemoryLimit != want {
			t.Errorf("%q: memory limit %d (%v), want %d", text, cfg.MemoryLimit, err, want)
		}
	}
	for text, want := range map[string]string{
		"memory_limit: lots\n":             `n.yaml:6: memory_limit: "lots" is not a size; write it as bytes or as text such as 2GiB`,
		"memory_limit: 1MiB\n":             "n.yaml:6: memory_limit: 1MiB is too little to run in; use 64MiB or more",
		"memory_limt: 2GiB\n":              `unknown key "memory_limt"; did you mean "memory_limit"?`,
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
