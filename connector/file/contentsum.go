package file

import (
	"context"
	"hash/maphash"
	"io"
)

// A rewrite knows the file it read by a content hash: the new file stays
// in only while the file it replaced still hashes the same (install
// compares the file's stat before the swap and hashes the file swapped
// out on Linux; elsewhere it hashes the file at the path before the
// rename), and the two-read CSV rewrite checks its second read against
// its first. So a rewrite hashes the whole file twice: at a million NHIs
// a CSV export is some 400 MB, and SHA-256 was half of a rewrite's CPU.
//
// The hash only tells "the same bytes" from "other bytes" within one
// process, and nothing keeps or shows it, so it needs no cryptographic
// strength: it is hash/maphash under a seed this process draws at random,
// which takes other content for the content read with odds of 2^-64 (it
// reads about ten times as fast as SHA-256). The watcher and a snapshot's
// settled check keep SHA-256.

// fileSum is a rewrite's content hash of a file.
type fileSum [8]byte

// contentSeed is the seed of this process's content hashes.
var contentSeed = maphash.MakeSeed()

// contentHash returns a new content hash (see fileSum).
func contentHash() *maphash.Hash {
	h := new(maphash.Hash)
	h.SetSeed(contentSeed)
	return h
}

// newRewriteReader is a guardedReader for a rewrite: it hashes what it
// reads with the content hash (sum).
func newRewriteReader(ctx context.Context, r io.Reader, limit int64) *guardedReader {
	return &guardedReader{ctx: ctx, r: r, h: contentHash(), left: limit}
}

// sum is the content hash of what a rewrite reader read.
func (g *guardedReader) sum() fileSum {
	var s fileSum
	copy(s[:], g.h.Sum(nil))
	return s
}
