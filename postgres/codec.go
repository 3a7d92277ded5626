package postgres

import "github.com/nhisync/nhisync/internal/storecodec"

// The state encoding and the time format are the shared ones (package
// storecodec), so both stores hold the same bytes.
type decoder = storecodec.Decoder

var (
	formatTime        = storecodec.FormatTime
	parseTime         = storecodec.ParseTime
	setTime           = storecodec.SetTime
	encodeRecordState = storecodec.AppendRecord
	encodeLinkState   = storecodec.AppendLink
)

func sortedKeys[V any](m map[string]V) []string { return storecodec.SortedKeys(m) }
