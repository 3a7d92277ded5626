package file

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// format reads and writes one file format.
type format interface {
	// nested reports whether native names are paths into objects.
	nested() bool
	// scan streams the records of a file to fn; fn must not keep the row.
	scan(r io.Reader, fn func(row) error) error
	// load parses a whole file for a rewrite.
	load(data []byte) (table, error)
}

// row is one record being read.
type row interface {
	// get returns the native value of a field; false when it is absent.
	get(fd *field) (any, bool)
}

// textRow is a row of a flat text format: reading a cell as text does not
// allocate.
type textRow interface {
	row
	text(fd *field) string
}

// table is a whole file held in memory for a rewrite.
type table interface {
	len() int
	row(i int) row
	// check reports why set(i, fd, …) would fail, changing nothing.
	check(i int, fd *field) error
	// arrays reports whether a set written to the field is an array
	// (formats with arrays, unless the field already holds text).
	arrays(i int, fd *field) bool
	// set stores a native value from native.Encode (nil clears the field).
	set(i int, fd *field, v any)
	// add appends an empty record and returns its index.
	add() int
	// encode returns the new file content.
	encode() ([]byte, error)
}

// Format names of the format setting.
const (
	FormatCSV   = "csv"
	FormatJSON  = "json"
	FormatJSONL = "jsonl"
	FormatYAML  = "yaml"
)

// formatFor returns the format named by the setting, or by the path's
// extension when the setting is empty.
func formatFor(name, path string) (format, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			name = FormatCSV
		case ".json":
			name = FormatJSON
		case ".jsonl", ".ndjson":
			name = FormatJSONL
		case ".yaml", ".yml":
			name = FormatYAML
		default:
			return nil, fmt.Errorf("cannot tell the format of %s from its extension; set format: csv, json, jsonl or yaml", filepath.Base(path))
		}
	}
	switch name {
	case FormatCSV:
		return csvFormat{}, nil
	case FormatJSON:
		return jsonFormat{}, nil
	case FormatJSONL, "ndjson":
		return jsonlFormat{}, nil
	case FormatYAML, "yml":
		return yamlFormat{}, nil
	}
	return nil, fmt.Errorf("unknown format %q; use csv, json, jsonl or yaml", name)
}
