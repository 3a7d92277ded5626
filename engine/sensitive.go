package engine

import (
	"fmt"
	"strings"

	"github.com/nhisync/nhisync"
)

// quote returns v quoted for a reason, an error or a sample, or
// nhisync.Redacted when f is sensitive: a sensitive value stays out of
// every reason, log, error and listing (the audit log keeps only its HMAC
// in old and new).
func quote(f *nhisync.Field, v nhisync.Value) string {
	if f != nil && f.Sensitive && !v.IsZero() {
		return nhisync.Redacted
	}
	return fmt.Sprintf("%q", v.String())
}

// quoteText is quote for one element or text of v.
func quoteText(f *nhisync.Field, text string) string {
	if f != nil && f.Sensitive && text != "" {
		return nhisync.Redacted
	}
	return fmt.Sprintf("%q", text)
}

// elems lists set elements for a reason, or says how many when f is
// sensitive.
func elems(f *nhisync.Field, es []string) string {
	if f != nil && f.Sensitive {
		return fmt.Sprintf("%d %s", len(es), nhisync.Redacted)
	}
	return strings.Join(es, ",")
}
