package file

import (
	"hash/maphash"
)

// A rewrite knows the file it read by a content hash: the new file stays
// in only while the file it replaced still hashes the same (install
// compares the file's stat before the swap and hashes the file swapped
// out on Linux; elsewhere it hashes the file at the path before the
// rename), and the two-read CSV rewrite checks its second read against
// its first. So a rewrite hashes the whole file twice: at a million NHIs
// a CSV export is some 400 MB, and SHA-256 was half of a rewrite's CPU.
// A snapshot's settled check reads the file twice too and compares the
// two reads' hashes: with SHA-256 that was a tenth of a quiet pass's CPU
// in the bench estate at 300,000 NHIs (two CSV files of three systems).
//
// The hash only tells "the same bytes" from "other bytes" within one
// process, and nothing keeps or shows it, so it needs no cryptographic
// strength: it is hash/maphash under a seed this process draws at random,
// which takes other content for the content read with odds of 2^-64 (it
// reads about ten times as fast as SHA-256). The watcher keeps SHA-256.

// fileSum is the content hash of a file, as a guardedReader read it.
type fileSum [8]byte

// contentSeed is the seed of this process's content hashes.
var contentSeed = maphash.MakeSeed()

// contentHash returns a new content hash (see fileSum).
func contentHash() *maphash.Hash {
	h := new(maphash.Hash)
	h.SetSeed(contentSeed)
	return h
}

// sum is the content hash of what g read.
func (g *guardedReader) sum() fileSum {
	var s fileSum
	copy(s[:], g.h.Sum(nil))
	return s
}
