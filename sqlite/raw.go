package sqlite

import (
	"fmt"
	"strings"

	"github.com/nhisync/nhisync"
)

// linkStatus returns the status named s, sharing the constant's string
// for the known ones so a million heads do not each keep a copy.
func linkStatus(s string) nhisync.LinkStatus {
	for _, st := range linkStatuses {
		if string(st) == s {
			return st
		}
	}
	return nhisync.LinkStatus(s)
}

var linkStatuses = []nhisync.LinkStatus{nhisync.LinkLive, nhisync.LinkGone, nhisync.LinkUnmatched, nhisync.LinkDisputed, nhisync.LinkDismissed}

// statusCode is an SQL expression of the status column: the index of a
// known status in linkStatuses, the text of another.
var statusCode = func() string {
	var b strings.Builder
	b.WriteString("CASE status")
	for i, st := range linkStatuses {
		fmt.Fprintf(&b, " WHEN '%s' THEN %d", st, i)
	}
	b.WriteString(" ELSE status END")
	return b.String()
}()

// interned hands out one shared copy of each of a few distinct strings
// (kinds, systems), so scanned heads do not each keep their own.
type interned map[string]string

func (in interned) get(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	in[s] = s
	return s
}

// bytes is get for the text b, copied only the first time it is seen.
func (in interned) bytes(b []byte) string {
	if v, ok := in[string(b)]; ok {
		return v
	}
	s := string(b)
	in[s] = s
	return s
}
