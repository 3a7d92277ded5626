package file

// SetBeforeCheck makes c run f before it checks during a rewrite that the
// file is still the one read, so tests can change the file under a write.
func SetBeforeCheck(c *Connector, f func()) { c.beforeCheck = f }

// SetBeforeSwap makes c run f after the hash check, just before the new
// file is swapped in, so tests can land an edit in that window.
func SetBeforeSwap(c *Connector, f func()) { c.beforeSwap = f }

// HashFile is the watcher's content hash of c's file.
func HashFile(c *Connector) (string, error) { return c.hashFile() }

// ContentChecks is how many whole-file content checks c's rewrites made.
func ContentChecks(c *Connector) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.contentChecks
}

// WideHeader and WideRow make the wide CSV export the benchmarks rewrite
// (csvrewrite_bench_test.go).
var WideHeader, WideRow = wideHeader, wideRow
