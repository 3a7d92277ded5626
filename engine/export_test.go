package engine

// SetClaimRows makes drains claim n queued writes at a time, so a test
// sees several claims of a few writes; the returned func restores it.
func SetClaimRows(n int) (restore func()) {
	old := claimRows
	claimRows = n
	return func() { claimRows = old }
}

// SetOutcomeDone has f called with each outcome commit's error once the
// drain can see it; the returned func restores it.
func SetOutcomeDone(f func(error)) (restore func()) {
	old := outcomeDone
	outcomeDone = f
	return func() { outcomeDone = old }
}

// SetApplyChunk makes drains send n records' writes per connector call,
// and commit n records' outcomes per commit, so a test sees one claim sent
// in several chunks and a whole-file system's one call committed in
// several; the returned func restores both.
func SetApplyChunk(n int) (restore func()) {
	old, oldOutcome := applyChunk, outcomeChunk
	applyChunk, outcomeChunk = n, n
	return func() { applyChunk, outcomeChunk = old, oldOutcome }
}

// SetOutcomeChunk makes drains commit up to n records' outcomes per
// commit (after SetApplyChunk, which sets it too); the returned func
// restores it.
func SetOutcomeChunk(n int) (restore func()) {
	old := outcomeChunk
	outcomeChunk = n
	return func() { outcomeChunk = old }
}

// SetReleaseMemory has f called instead of debug.FreeOSMemory once a bulk
// window's records are decided; the returned func restores it.
func SetReleaseMemory(f func()) (restore func()) {
	old := releaseMemory
	releaseMemory = f
	return func() { releaseMemory = old }
}

// SetLazyShare sets lazyShare: 0 makes every pass load every golden
// record's head, -1 look keys up whenever correlation allows; the returned
// func restores it.
func SetLazyShare(n int) (restore func()) {
	old := lazyShare
	lazyShare = n
	return func() { lazyShare = old }
}

// SetLoadAheadChunks sets loadAheadChunks, how many chunks' stored records
// decideAll loads in one read; the returned func restores it.
func SetLoadAheadChunks(n int) (restore func()) {
	old := loadAheadChunks
	loadAheadChunks = n
	return func() { loadAheadChunks = old }
}

// SetLeaveStrays sets whether a pass leaves unchanged strays that nothing
// could match alone (leaveStrays) or restages every one.
func SetLeaveStrays(on bool) (restore func()) {
	old := leaveStraysOn
	leaveStraysOn = on
	return func() { leaveStraysOn = old }
}
