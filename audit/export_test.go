package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

func TestExport(t *testing.T) {
	log := newMemLog(30)
	tests := []struct {
		name      string
		from, to  int64
		first, nb int64 // first seq and number of lines
	}{
		{"all", 0, 0, 1, 30},
		{"from 1", 1, 0, 1, 30},
		{"a range", 5, 12, 5, 7},
		{"to the end", 28, 0, 28, 3},
		{"empty range", 7, 7, 0, 0},
		{"beyond the end", 31, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Export(context.Background(), log, &buf, tt.from, tt.to); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(&buf)
			var n int64
			for sc.Scan() {
				line := sc.Bytes()
				seq := tt.first + n
				n++
				var e nhisync.AuditEntry
				if err := json.Unmarshal(line, &e); err != nil {
					t.Fatalf("line %d: %v", n, err)
				}
				stored := log.at(seq)
				if e.Seq != seq || e.Hash != stored.e.Hash || e.Hash == "" {
					t.Fatalf("line %d: seq %d hash %q, want %d %q", n, e.Seq, e.Hash, seq, stored.e.Hash)
				}
				// Without its hash, a line is the exact leaf: an export
				// can be checked without nhisync.
				leaf := strings.Replace(string(line), `,"hash":"`+e.Hash+`"`, "", 1)
				if leaf != string(stored.leaf) {
					t.Fatalf("line %d without its hash:\n%s\nleaf:\n%s", n, leaf, stored.leaf)
				}
			}
			if n != tt.nb {
				t.Errorf("%d lines, want %d", n, tt.nb)
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestExportErrors(t *testing.T) {
	ctx := context.Background()
	for _, r := range [][2]int64{{-1, 0}, {5, 3}, {0, -2}} {
		wantCode(t, Export(ctx, newMemLog(3), &bytes.Buffer{}, r[0], r[1]), nhisync.EINVALID)
	}
	wantCode(t, Export(ctx, newMemLog(3), failingWriter{}, 0, 0), nhisync.EINTERNAL)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	wantCode(t, Export(canceled, newMemLog(3), &bytes.Buffer{}, 0, 0), nhisync.EUNAVAIL)
}
