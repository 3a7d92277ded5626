package httpapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nhisync/nhisync"
)

// openapiYAML is the API's description and its route table.
//
//go:embed openapi.yaml
var openapiYAML []byte

// document is the parsed OpenAPI document: its JSON form, served as is,
// and the operations the server routes.
type document struct {
	json []byte
	ops  []operation
}

// operation is one method on one documented path.
type operation struct {
	Method string
	Path   string // as documented: /api/v1/conflicts/{id}/resolve
	ID     string // operationId, the handler's name
	Role   nhisync.Role
}

// loadDocument parses the embedded document.
func loadDocument() (*document, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(openapiYAML, &raw); err != nil {
		return nil, fmt.Errorf("httpapi: openapi.yaml: %w", err)
	}
	js, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("httpapi: openapi.yaml to JSON: %w", err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Role        string `json:"x-nhisync-role"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("httpapi: openapi.yaml paths: %w", err)
	}
	d := &document{json: js}
	for path, methods := range doc.Paths {
		for method, op := range methods {
			role := nhisync.Role(op.Role)
			if op.OperationID == "" || !role.Valid() {
				return nil, fmt.Errorf("httpapi: openapi.yaml: %s %s needs an operationId and an x-nhisync-role", method, path)
			}
			d.ops = append(d.ops, operation{Method: strings.ToUpper(method), Path: path, ID: op.OperationID, Role: role})
		}
	}
	sort.Slice(d.ops, func(i, j int) bool {
		if d.ops[i].Path != d.ops[j].Path {
			return d.ops[i].Path < d.ops[j].Path
		}
		return d.ops[i].Method < d.ops[j].Method
	})
	return d, nil
}

// Operations lists the documented operations (for tests and docs).
func (s *Server) Operations() []operation { return slices.Clone(s.doc.ops) }

// call is one authenticated API request.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	who *principal
	// path holds the path parameters: those of the pattern, and for record
	// paths kind, key (the match key) and field.
	path map[string]string
}

func (c *call) param(name string) string {
	if v, ok := c.path[name]; ok {
		return v
	}
	return c.r.PathValue(name)
}

type handler func(s *Server, c *call) error

// handlers are the API's operations by operationId.
var handlers = map[string]handler{
	"listRecords":       (*Server).listRecords,
	"getRecord":         (*Server).getRecord,
	"recordHistory":     (*Server).recordHistory,
	"explainField":      (*Server).explainField,
	"listConflicts":     (*Server).listConflicts,
	"resolveConflict":   (*Server).resolveConflict,
	"listQuarantine":    (*Server).listQuarantine,
	"dismissQuarantine": (*Server).dismissQuarantine,
	"listApprovals":     (*Server).listApprovals,
	"approveWrite":      (*Server).approveWrite,
	"rejectWrite":       (*Server).rejectWrite,
	"getReport":         (*Server).getReport,
	"listSystems":       (*Server).listSystems,
	"startSync":         (*Server).startSync,
	"latestCheckpoint":  (*Server).latestCheckpoint,
	"auditProof":        (*Server).auditProof,
}

// recordPrefix starts the paths whose {key} spans several segments (one
// per match field of the kind): ServeMux cannot end a wildcard before a
// suffix, so they share one pattern and recordRoute tells them apart.
const recordPrefix = "/api/v1/records/{kind}/{key}"

// routeAPI registers every documented operation; a documented operation
// without a handler, or a handler no operation names, is an error.
func (s *Server) routeAPI() error {
	used := map[string]bool{}
	type recordOp struct {
		suffix []string // path segments after {key}
		op     operation
		h      handler
	}
	records := map[string][]recordOp{} // by method
	for _, op := range s.doc.ops {
		h := handlers[op.ID]
		if h == nil {
			return fmt.Errorf("httpapi: openapi.yaml documents %s %s (%s) but no handler serves it", op.Method, op.Path, op.ID)
		}
		if used[op.ID] {
			return fmt.Errorf("httpapi: openapi.yaml names operation %s twice", op.ID)
		}
		used[op.ID] = true
		if rest, ok := strings.CutPrefix(op.Path, recordPrefix); ok {
			var suffix []string
			if rest != "" {
				suffix = strings.Split(strings.TrimPrefix(rest, "/"), "/")
			}
			records[op.Method] = append(records[op.Method], recordOp{suffix: suffix, op: op, h: h})
			continue
		}
		s.mux.Handle(op.Method+" "+op.Path, s.authed(op, func(s *Server, c *call) error { return h(s, c) }))
	}
	for name := range handlers {
		if !used[name] {
			return fmt.Errorf("httpapi: handler %s is in no operation of openapi.yaml", name)
		}
	}
	for method, ops := range records {
		least := ops[0].op
		for _, o := range ops {
			if o.op.Role.Includes(least.Role) {
				continue
			}
			least = o.op
		}
		route := func(s *Server, c *call) error {
			kind, key, rest, err := s.splitRecordPath(c.r)
			if err != nil {
				return err
			}
			for _, o := range ops {
				if vals, ok := matchSuffix(o.suffix, rest); ok {
					if !c.who.role.Includes(o.op.Role) {
						return forbidden(c.who, o.op)
					}
					c.path = map[string]string{"kind": kind, "key": key}
					for k, v := range vals {
						c.path[k] = v
					}
					return o.h(s, c)
				}
			}
			return nhisync.Errorf(nhisync.ENOTFOUND, "no API route %s %s; see /api/v1/openapi.json", c.r.Method, c.r.URL.Path)
		}
		// Authentication first (the least role of the group); each
		// operation then checks its own role.
		s.mux.Handle(method+" /api/v1/records/{kind}/{rest...}", s.authed(least, route))
	}
	return nil
}

// splitRecordPath reads kind and match key from the escaped path (so a
// key part may hold an escaped '/'), returning the segments after the key.
func (s *Server) splitRecordPath(r *http.Request) (kind, matchKey string, rest []string, err error) {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v1/records/"), "/")
	kind, err = url.PathUnescape(segs[0])
	if err != nil {
		return "", "", nil, nhisync.Errorf(nhisync.EINVALID, "bad kind in the path: %v", err)
	}
	k := s.opt.Config.Kinds[kind]
	if k == nil {
		return "", "", nil, nhisync.Errorf(nhisync.ENOTFOUND, "no kind %q in the config; kinds: %s", kind, strings.Join(s.opt.Config.KindNames, ", "))
	}
	n := len(k.Match)
	if len(segs)-1 < n {
		return "", "", nil, nhisync.Errorf(nhisync.EINVALID, "kind %s has %d match field(s) (%s), so the key needs %d path segment(s)", kind, n, strings.Join(k.Match, ", "), n)
	}
	name := strings.Join(segs[:1+n], "/")
	_, matchKey, err = nhisync.ParseRecordName(name, func(string) (int, bool) { return n, true })
	if err != nil {
		return "", "", nil, err
	}
	return kind, matchKey, segs[1+n:], nil
}

// matchSuffix matches path segments against a documented suffix such as
// [explain {field}], returning the parameters.
func matchSuffix(pattern, segs []string) (map[string]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	vals := map[string]string{}
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			v, err := url.PathUnescape(segs[i])
			if err != nil || v == "" {
				return nil, false
			}
			vals[strings.Trim(p, "{}")] = v
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return vals, true
}
