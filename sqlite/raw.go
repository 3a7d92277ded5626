package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nhisync/nhisync"
)

// rawQuery runs query on one reader connection below database/sql and
// hands fn each row as the driver produced it. Head scans read millions
// of rows a pass: database/sql's per-row work (a lock, a conversion and
// often a copy per column) cost more than SQLite's (ScanLinkHeads was 45%
// of a quiet pass's CPU). fn must not keep row; the strings and byte
// slices in it are the driver's own fresh copies and may be kept.
func (s *Store) rawQuery(ctx context.Context, query string, args []driver.NamedValue, cols int, fn func(row []driver.Value) error) error {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("the SQLite driver's connection (%T) cannot query", dc)
		}
		rows, err := q.QueryContext(ctx, query, args)
		if err != nil {
			return err
		}
		defer rows.Close()
		row := make([]driver.Value, cols)
		for {
			if err := rows.Next(row); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if err := fn(row); err != nil {
				return err
			}
		}
	})
}

// namedArgs numbers args as driver arguments.
func namedArgs(args ...any) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return out
}

// rawString, rawInt and rawBytes read a driver value of a column of that
// type (NULL reads as the zero value); a value of another type is an
// error, not a silent zero.
func rawString(v driver.Value) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("column holds %T, want text", v)
}

func rawInt(v driver.Value) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case nil:
		return 0, nil
	}
	return 0, fmt.Errorf("column holds %T, want an integer", v)
}

func rawBytes(v driver.Value) ([]byte, error) {
	switch v := v.(type) {
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("column holds %T, want a blob", v)
}

// linkStatus returns the status named s, sharing the constant's string
// for the known ones so a million heads do not each keep a copy.
func linkStatus(s string) nhisync.LinkStatus {
	for _, st := range linkStatuses {
		if string(st) == s {
			return st
		}
	}
	return nhisync.LinkStatus(s)
}

var linkStatuses = []nhisync.LinkStatus{nhisync.LinkLive, nhisync.LinkGone, nhisync.LinkUnmatched, nhisync.LinkDisputed, nhisync.LinkDismissed}

// statusCode is an SQL expression of the status column: the index of a
// known status in linkStatuses, the text of another.
var statusCode = func() string {
	var b strings.Builder
	b.WriteString("CASE status")
	for i, st := range linkStatuses {
		fmt.Fprintf(&b, " WHEN '%s' THEN %d", st, i)
	}
	b.WriteString(" ELSE status END")
	return b.String()
}()

// rawStatus reads a column of statusCode.
func rawStatus(v driver.Value) (nhisync.LinkStatus, error) {
	if i, ok := v.(int64); ok {
		if i < 0 || i >= int64(len(linkStatuses)) {
			return "", fmt.Errorf("status code %d is none of %d", i, len(linkStatuses))
		}
		return linkStatuses[i], nil
	}
	s, err := rawString(v)
	return linkStatus(s), err
}

// interned hands out one shared copy of each of a few distinct strings
// (kinds, systems), so scanned heads do not each keep their own.
type interned map[string]string

func (in interned) get(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	in[s] = s
	return s
}
