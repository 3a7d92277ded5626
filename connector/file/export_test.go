package file

// SetBeforeCheck makes c run f before it re-checks the file's content hash
// during a rewrite, so tests can change the file under a write.
func SetBeforeCheck(c *Connector, f func()) { c.beforeCheck = f }
