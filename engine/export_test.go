package engine

// SetClaimRows makes drains claim n queued writes at a time, so a test
// sees several claims of a few writes; the returned func restores it.
func SetClaimRows(n int) (restore func()) {
	old := claimRows
	claimRows = n
	return func() { claimRows = old }
}
