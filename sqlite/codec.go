package sqlite

import (
	"strconv"

	"github.com/nhisync/nhisync/internal/storecodec"
)

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

// appendIDs appends ids as a JSON array, the parameter of json_each.
func appendIDs(b []byte, ids []int64) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return append(b, ']')
}
