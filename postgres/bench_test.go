package postgres

import (
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

// The storetest benchmarks on PostgreSQL, beside the SQLite store's of the
// same names (SPEC §8: within 1.5 × SQLite). Their CPU figures are this
// process's only; the server's work shows in the wall time.

func open(b *testing.B) nhisync.Store { return openTest(b) }

func BenchmarkCommitLinks(b *testing.B)     { storetest.BenchmarkCommitLinks(b, open) }
func BenchmarkLoadRecords(b *testing.B)     { storetest.BenchmarkLoadRecords(b, open) }
func BenchmarkAppendAudit(b *testing.B)     { storetest.BenchmarkAppendAudit(b, open) }
func BenchmarkCommitFirstPass(b *testing.B) { storetest.BenchmarkCommitFirstPass(b, open) }
func BenchmarkScanLinkHeads(b *testing.B)   { storetest.BenchmarkScanLinkHeads(b, open) }
func BenchmarkScanRecordHeads(b *testing.B) { storetest.BenchmarkScanRecordHeads(b, open) }
func BenchmarkBulkLoad(b *testing.B)        { storetest.BenchmarkBulkLoad(b, open) }
func BenchmarkClaimOutbox(b *testing.B)     { storetest.BenchmarkClaimOutbox(b, open) }
func BenchmarkLoadLinks(b *testing.B)       { storetest.BenchmarkLoadLinks(b, open) }
