// Package config owns nhisync.yaml: it parses the file (go.yaml.in/yaml/v3
// nodes, walked by hand so every problem has a line), expands ${VAR} from
// the environment, applies defaults, validates every key and cross
// reference, compiles rules and transforms (package rule), and builds the
// *nhisync.Config every other package reads. Problems are collected, not
// stopped at: one EINVALID error lists each as FILE:LINE: what; fix.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nhisync/nhisync"
)

// Defaults of the top-level keys, as written in the file (relative paths
// are taken against the config file's directory).
const (
	DefaultStore      = "sqlite:./nhisync-data/nhisync.db"
	DefaultSigningKey = "./nhisync-data/audit.key"
	// DefaultSecretName is the HMAC secret's file name, beside the
	// signing key unless audit.hmac_key names another file.
	DefaultSecretName = "audit.hmac"
	// DefaultFile is the file name commands read when given none.
	DefaultFile = "nhisync.yaml"
)

// Load reads and parses the config file at path, expanding ${VAR} from
// the process environment. It returns *nhisync.Error with code EINVALID
// when the file cannot be read or is invalid (see Parse).
func Load(path string) (*nhisync.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: fmt.Sprintf("%s: no such file; create one with `nhisync init` or name another with -c FILE", path), Err: err}
		}
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: fmt.Sprintf("%s: cannot read the config file", path), Err: err}
	}
	return Parse(data, path, os.LookupEnv)
}

// Parse parses and validates a config file's content. path names the file
// in messages and its directory is the base of relative paths (BaseDir,
// Store, SigningKey); lookupEnv resolves ${VAR} (nil: no variables set).
//
// When anything is wrong it returns one *nhisync.Error with code EINVALID
// whose Message lists every problem found, one per line, as
// `FILE:LINE: key.path: what is wrong; what to change` (ParseProblems
// returns them as values). Messages quote values as the file writes them,
// never as expanded from the environment.
func Parse(data []byte, path string, lookupEnv func(string) (string, bool)) (*nhisync.Config, error) {
	cfg, problems := ParseProblems(data, path, lookupEnv)
	if err := problems.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ParseProblems is Parse returning the problems, in line order, instead of
// an error. The config is nil when there are any.
func ParseProblems(data []byte, path string, lookupEnv func(string) (string, bool)) (*nhisync.Config, Problems) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	file := path
	if file == "" {
		file = DefaultFile
	}
	p := &parser{
		problems:  problems{file: file},
		lookupEnv: lookupEnv,
		orig:      map[*yaml.Node]string{},
		badExpand: map[*yaml.Node]bool{},
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlError(err)
		p.add(line, "", "%s; fix the YAML syntax", msg)
		return nil, p.list
	}
	if len(doc.Content) == 0 {
		p.add(1, "", "the file is empty; start from `nhisync init`, which writes a commented example")
		return nil, p.list
	}
	p.expandTree(&doc, "")
	cfg := &nhisync.Config{
		Path:    path,
		BaseDir: baseDir(path),
		Kinds:   map[string]*nhisync.Kind{},
		Systems: map[string]*nhisync.System{},
	}
	p.config(doc.Content[0], cfg)
	if len(p.list) > 0 {
		return nil, p.list.sorted()
	}
	cfg.Fingerprint = fingerprint(cfg)
	return cfg, nil
}

// baseDir returns the absolute directory of the config file.
func baseDir(path string) string {
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError splits a YAML syntax error into its line and message.
func yamlError(err error) (int, string) {
	msg := err.Error()
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		// yaml.v3 reports the parser's (not the scanner's) errors at a
		// zero-based line: that of the collection being parsed.
		for _, p := range parserErrors {
			if strings.HasPrefix(m[2], p) {
				line++
				break
			}
		}
		return line, m[2]
	}
	return 1, strings.TrimPrefix(msg, "yaml: ")
}

// parserErrors start the messages of yaml.v3's parser errors.
var parserErrors = []string{
	"did not find expected key", "did not find expected '-' indicator",
	"did not find expected ',' or", "did not find expected node content",
	"did not find expected <document start>", "found undefined tag handle",
	"found duplicate %", "found incompatible YAML document",
}

// topKeys are the keys of the file's root mapping.
var topKeys = []string{"version", "store", "audit", "kinds", "systems", "reports", "reconcile", "serve", "memory_limit"}

// config walks the root mapping.
func (p *parser) config(root *yaml.Node, cfg *nhisync.Config) {
	root = resolve(root)
	entries, ok := p.mapping(root, "")
	if !ok {
		return
	}
	top := p.known(entries, "", topKeys)

	if e, ok := top["version"]; !ok {
		p.add(root.Line, "", "missing version; add `version: 1` at the top")
	} else if v, ok := p.integer(e.v, "version"); ok {
		if v != 1 {
			p.add(e.v.Line, "version", "version %d is not supported; this nhisync reads version 1", v)
		}
		cfg.Version = v
	}

	cfg.Store = p.store(top, cfg.BaseDir)
	cfg.SigningKey, cfg.AuditSecret, cfg.AuditPublish = p.audit(top, cfg.BaseDir)

	// Kinds first (their fields), then systems (which map those fields),
	// then what kinds say about systems and the rules.
	var kinds []*kindNode
	if e, ok := top["kinds"]; !ok || isNull(e.v) {
		p.add(root.Line, "", "no kinds; declare at least one under kinds: (see `nhisync init`)")
	} else {
		kinds = p.kinds(e.v, cfg)
	}
	var systems []*systemNode
	if e, ok := top["systems"]; ok {
		systems = p.systems(e.v, cfg)
	}
	for _, k := range kinds {
		p.kindRefs(k, cfg)
	}
	for _, k := range kinds {
		p.rules(k)
	}
	if e, ok := top["reports"]; ok {
		p.reports(e.v, cfg)
	}
	p.serve(top, cfg)
	// Connectors validate last, and only systems that are otherwise sound.
	for _, s := range systems {
		p.validate(s)
	}
}

// store reads `store:` and resolves a relative SQLite path.
func (p *parser) store(top map[string]entry, base string) string {
	raw, line := DefaultStore, 0
	if e, ok := top["store"]; ok && !isNull(e.v) {
		s, ok := p.str(e.v, "store")
		if !ok {
			return ""
		}
		raw, line = s, e.v.Line
		show := p.show(resolve(e.v))
		switch {
		case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
			return s
		case strings.HasPrefix(s, "sqlite:"):
		default:
			p.add(line, "store", "%s is not a store URL; use sqlite:PATH (default %s) or postgres://USER@HOST:5432/DB", show, DefaultStore)
			return ""
		}
	}
	path := strings.TrimPrefix(raw, "sqlite:")
	switch {
	case path == "" || strings.HasPrefix(path, "//"):
		p.add(line, "store", "sqlite: needs a file path, like sqlite:./nhisync-data/nhisync.db")
		return ""
	case path == ":memory:" || strings.HasPrefix(path, "file:") || filepath.IsAbs(path):
		return raw
	}
	return "sqlite:" + filepath.Join(base, path)
}

// audit reads `audit:` and resolves the paths of the signing key, the
// HMAC secret (default audit.hmac beside the key) and the publish file
// (default none).
func (p *parser) audit(top map[string]entry, base string) (key, secret, publish string) {
	key = DefaultSigningKey
	path := func(a map[string]entry, name string) (string, bool) {
		k, ok := a[name]
		if !ok || isNull(k.v) {
			return "", true
		}
		s, ok := p.str(k.v, "audit."+name)
		if !ok {
			return "", false
		}
		if s == "" {
			p.add(k.v.Line, "audit."+name, "empty path; give a file path or leave the key out for its default")
			return "", false
		}
		if !filepath.IsAbs(s) {
			s = filepath.Join(base, s)
		}
		return s, true
	}
	if e, ok := top["audit"]; ok {
		entries, ok := p.mapping(e.v, "audit")
		if !ok {
			return "", "", ""
		}
		a := p.known(entries, "audit", []string{"signing_key", "hmac_key", "publish"})
		var okKey, okSecret, okPublish bool
		if key, okKey = path(a, "signing_key"); okKey && key == "" {
			key = DefaultSigningKey
		}
		secret, okSecret = path(a, "hmac_key")
		publish, okPublish = path(a, "publish")
		if !okKey || !okSecret || !okPublish {
			return "", "", ""
		}
	}
	if !filepath.IsAbs(key) {
		key = filepath.Join(base, key)
	}
	if secret == "" {
		secret = filepath.Join(filepath.Dir(key), DefaultSecretName)
	}
	return key, secret, publish
}
