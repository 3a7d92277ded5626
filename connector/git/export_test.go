package git

// SetBeforeSwap makes c run f between making a commit and moving the
// branch to it.
func SetBeforeSwap(c *Connector, f func()) { c.beforeSwap = f }
