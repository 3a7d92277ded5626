package file

import "time"

// SetWatchTiming sets the feed's quiet period and settle wait for a test
// and returns a function that restores them.
func SetWatchTiming(quiet, settle time.Duration) (restore func()) {
	q, s := watchQuiet, watchSettle
	watchQuiet, watchSettle = quiet, settle
	return func() { watchQuiet, watchSettle = q, s }
}
