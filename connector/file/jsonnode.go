package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/nhisync/nhisync/connector/native"
	"go.yaml.in/yaml/v3"
)

// JSON documents are held as YAML nodes: one tree type for JSON and YAML
// keeps key order on rewrite and lets the native path helpers serve both.
// Numbers keep their literal text, so a rewrite does not turn 10.50 into
// 10.5 in records nhisync never touched.

// readJSON reads one JSON value from dec (which must UseNumber).
func readJSON(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	return jsonNode(dec, tok)
}

func jsonNode(dec *json.Decoder, tok json.Token) (*yaml.Node, error) {
	switch v := tok.(type) {
	case json.Delim:
		var n *yaml.Node
		switch v {
		case '{':
			n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		case '[':
			n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		default:
			return nil, fmt.Errorf("unexpected %q", v)
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k})
			}
			c, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}, nil
	case json.Number:
		tag := "!!float"
		if !strings.ContainsAny(string(v), ".eE") {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(v)}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(v)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

// jsonError turns a decoding error into a syntaxError with the line of the
// offset where it happened.
func jsonError(data []byte, dec *json.Decoder, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return &syntaxError{Line: 1 + bytes.Count(data[:off], []byte("\n")), Msg: "invalid JSON: " + err.Error()}
}

// jsonWriter writes nodes as JSON, indented like the file it came from.
type jsonWriter struct {
	b      []byte
	indent string // "" writes compact JSON
}

func (w *jsonWriter) newline(depth int) {
	if w.indent == "" {
		return
	}
	w.b = append(w.b, '\n')
	for range depth {
		w.b = append(w.b, w.indent...)
	}
}

func (w *jsonWriter) value(n *yaml.Node, depth int) {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		w.b = append(w.b, "null"...)
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			w.b = append(w.b, "null"...)
			return
		}
		w.value(n.Content[0], depth)
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			w.b = append(w.b, "{}"...)
			return
		}
		w.b = append(w.b, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.newline(depth + 1)
			w.b = appendJSONString(w.b, n.Content[i].Value)
			w.b = append(w.b, ':')
			if w.indent != "" {
				w.b = append(w.b, ' ')
			}
			w.value(n.Content[i+1], depth+1)
		}
		w.newline(depth)
		w.b = append(w.b, '}')
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			w.b = append(w.b, "[]"...)
			return
		}
		w.b = append(w.b, '[')
		for i, c := range n.Content {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.newline(depth + 1)
			w.value(c, depth+1)
		}
		w.newline(depth)
		w.b = append(w.b, ']')
	default:
		switch n.ShortTag() {
		case "!!null":
			w.b = append(w.b, "null"...)
		case "!!bool":
			if n.Value == "true" || n.Value == "false" {
				w.b = append(w.b, n.Value...)
			} else {
				w.b = appendJSONString(w.b, n.Value)
			}
		case "!!int", "!!float":
			if native.IsJSONNumber(n.Value) {
				w.b = append(w.b, n.Value...)
			} else {
				w.b = appendJSONString(w.b, n.Value)
			}
		default:
			w.b = appendJSONString(w.b, n.Value)
		}
	}
}

// appendJSONString appends s as a JSON string, escaping what JSON requires
// (and U+2028/U+2029, as encoding/json does) but not HTML characters.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// jsonIndent guesses the indent unit of a JSON array of objects: the white
// space starting its second line ("" when the file is on one line).
func jsonIndent(data []byte) string {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		return ""
	}
	rest := data[i+1:]
	j := 0
	for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
		j++
	}
	if j == 0 {
		return "  "
	}
	return string(rest[:j])
}
