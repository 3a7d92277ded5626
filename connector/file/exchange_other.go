//go:build !linux

package file

import "os"

// exchange renames a over b: without renameat2 the window between the
// hash check and the rename stays open (an edit landing in it is lost).
func exchange(a, b string) (bool, error) { return false, os.Rename(a, b) }
