//go:build !linux

package file

import "io/fs"

// exchange cannot swap files here: install hashes the file and renames
// over it, and the window between the two stays open (an edit landing in
// it is lost).
func exchange(a, b string) error { return errNoExchange }

// changeTime is 0: no change time is compared here.
func changeTime(fs.FileInfo) int64 { return 0 }
