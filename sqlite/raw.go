package sqlite

import "github.com/nhisync/nhisync"

// linkStatus returns the status named s (text, or its bytes as SQLite
// holds them), sharing the constant's string for the known ones so a
// million heads do not each keep a copy; s is copied only when it names
// no known status.
func linkStatus[T string | []byte](s T) nhisync.LinkStatus {
	for _, st := range linkStatuses {
		if string(st) == string(s) {
			return st
		}
	}
	return nhisync.LinkStatus(s)
}

var linkStatuses = []nhisync.LinkStatus{nhisync.LinkLive, nhisync.LinkGone, nhisync.LinkUnmatched, nhisync.LinkDisputed, nhisync.LinkDismissed}

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
