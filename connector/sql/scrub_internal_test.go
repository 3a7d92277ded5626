package sql

import (
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestScrub: the connector's Scrub (nhisync.Scrubber, what the engine
// scrubs a panic's value with) takes the password out of a text, as is
// and URL-escaped, as the connector's own errors have it.
func TestScrub(t *testing.T) {
	const pw = "p@ss/word"
	c := &Connector{t: target{secrets: []string{pw}}}
	for _, in := range []string{
		"dial postgres://nhi:" + pw + "@db/estate",
		"dial postgres://nhi:" + url.QueryEscape(pw) + "@db/estate",
		"dial postgres://nhi:" + url.PathEscape(pw) + "@db/estate",
	} {
		if got := c.Scrub(in); strings.Contains(got, "word") || !strings.Contains(got, "nhi:xxxxx@db") {
			t.Errorf("Scrub(%q) = %q; want the password replaced", in, got)
		}
	}
}

// TestDSNQuerySecretsRedacted: a password query parameter is redacted
// from the DSN messages show, and scrubbed from errors as written and as
// the driver takes it, whatever it holds: a ";" (Go's URL parser skips
// such a pair, so it was shown as given), a "#" (the URL parser takes
// what follows as a fragment, shown as given; the PostgreSQL driver takes
// it as part of the password), a key spelled with an escape. Refused,
// without quoting the password: on MySQL one whose escapes do not decode
// (it was shown as given, and no password was sent) and a "#" anywhere
// (TestDSNHashRefused); on PostgreSQL a key in capitals
// (TestPostgresDSNSecretParamsRefused).
func TestDSNQuerySecretsRedacted(t *testing.T) {
	parts := []string{"s3cr3t", "Pa55", "w0rd"}
	for _, tc := range []struct{ dsn, pw string }{
		{"postgres://nhi@127.0.0.1:1/cmdb?password=s3cr3t;Pa55w0rd&sslmode=disable", "s3cr3t;Pa55w0rd"},
		{"postgres://nhi@127.0.0.1:1/cmdb?sslmode=disable&password=s3cr3tPa55#w0rd", "s3cr3tPa55#w0rd"},
		{"postgres://nhi@127.0.0.1:1/cmdb?password=s3cr3t#Pa55&sslmode=disable&sslpassword=w0rd", "s3cr3t#Pa55"},
		{"postgres://nhi@127.0.0.1:1/cmdb?pass%77ord=s3cr3tPa55w0rd", "s3cr3tPa55w0rd"},
		{"mysql://root@127.0.0.1:3306/test?password=s3cr3t;Pa55w0rd", "s3cr3t;Pa55w0rd"},
		{"mysql://root:s3cr3t@127.0.0.1:3306/test?pwd=Pa55;w0rd", "s3cr3t"},
	} {
		tg, err := parseDSN(tc.dsn, "", poolLimits{size: 1, timeout: time.Second})
		if err != nil {
			t.Errorf("%s: %v", tg.redacted, err)
			continue
		}
		msg := "cannot reach " + tg.redacted + ": " + scrubText("dial "+tc.dsn+" as "+tc.pw+" ("+url.QueryEscape(tc.pw)+")", tg.secrets...)
		for _, p := range parts {
			if strings.Contains(msg, p) {
				t.Errorf("the message shows %q of the password: %s", p, msg)
			}
		}
		if !strings.Contains(tg.redacted, "=xxxxx") || !strings.Contains(tg.redacted, "@127.0.0.1") {
			t.Errorf("redacted %q: want the DSN with its password replaced", tg.redacted)
		}
	}
	for _, tc := range []struct{ dsn, want string }{
		{"mysql://root@127.0.0.1:3306/test?password=s3cr3t%Pa55w0rd", "not URL-escaped"},
		{"mysql://root@127.0.0.1:3306/test?password=s3cr3t%3BPa55#w0rd", "%23"},
		{"mysql://root:s3cr3t#Pa55w0rd@127.0.0.1:3306/test", "%23"},
		{"postgres://nhi@127.0.0.1:1/cmdb?PASSWORD=s3cr3t%3BPa55w0rd", "password="},
		// pgx takes a "+" in a key as itself: "pwd+" is a setting it
		// would send with its value, while the redaction reads it as pwd.
		{"postgres://nhi@127.0.0.1:1/cmdb?pwd+=s3cr3tPa55w0rd", "password="},
		{"postgres://nhi@127.0.0.1:1/cmdb?%2Bpass=s3cr3tPa55w0rd", "password="},
	} {
		_, err := parseDSN(tc.dsn, "", poolLimits{size: 1, timeout: time.Second})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want refused saying %q", err, tc.want)
		}
		for _, p := range parts {
			if err != nil && strings.Contains(err.Error(), p) {
				t.Errorf("the error shows %q of the password: %v", p, err)
			}
		}
	}
}

// TestDriverLogLeavesSecretsAlone: the MySQL driver's log lines are
// scrubbed of the DSN and its password without writing into the
// target's list of secrets: with a password query parameter that list
// has spare room, which each line wrote the DSN into, from the driver's
// goroutines at once (a data race under -race).
func TestDriverLogLeavesSecretsAlone(t *testing.T) {
	dsn := "mysql://root@127.0.0.1:3306/test?password=s3cr3tPa55w0rd"
	tg, err := parseDSN(dsn, "", poolLimits{size: 1, timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	var mu sync.Mutex
	tg.mysqlLog.to.Store(slog.New(slog.NewTextHandler(&lockedWriter{w: &log, mu: &mu}, nil)))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg.mysqlLog.Print("dial ", dsn, " as s3cr3tPa55w0rd")
		}()
	}
	wg.Wait()
	for _, s := range tg.secrets[len(tg.secrets):cap(tg.secrets)] {
		if s != "" {
			t.Errorf("the driver's log wrote %q past the target's secrets", s)
		}
	}
	if got := log.String(); strings.Contains(got, "s3cr3t") || strings.Count(got, "xxxxx") < 4 {
		t.Errorf("the driver's lines, scrubbed: %q", got)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
