package nhisync

import "context"

// Watcher is a connector whose system can tell when it changed: a feed
// (file watch, PostgreSQL LISTEN/NOTIFY, LDAP sync). Feeds are
// level-triggered, as in controller-runtime: they only say "look again";
// the pass that follows reads the system and decides from what it holds.
//
// Watch blocks until ctx ends (returning nil) or the feed fails for good
// (returning the error; the service then falls back to polling). It calls
// changed, from one goroutine, each time the system may hold new data:
// with the native IDs that changed when the feed knows them, else nil.
type Watcher interface {
	Watch(ctx context.Context, changed func(ids []string)) error
}
