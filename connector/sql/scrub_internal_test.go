package sql

import (
	"net/url"
	"strings"
	"testing"
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
