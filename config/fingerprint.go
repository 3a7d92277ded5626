package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nhisync/nhisync"
)

// The fingerprint's canonical rendering: every decision-relevant member of
// the parsed config, in a fixed order, JSON-encoded (maps sort their keys).
// Compiled rules and transforms enter by their source.
type (
	fpConfig struct {
		Version    int
		Store      string
		SigningKey string
		BaseDir    string
		Kinds      []fpKind
		Systems    []fpSystem
	}
	fpKind struct {
		Name       string
		Match      []string
		CreateFrom []string
		RetireFrom []string
		Fields     []fpField
		Rules      [][2]string
	}
	fpField struct {
		Name       string
		Type       nhisync.FieldType
		Values     []string
		To         string
		Required   bool
		Sensitive  bool
		Authority  []string
		Resolve    nhisync.Strategy
		WinsRemove bool
		StaleAfter time.Duration
		ApproveTo  []string
	}
	fpSystem struct {
		Name      string
		Connector string
		Kind      string
		Fields    []fpMapping
		ID        string
		Direction nhisync.Direction
		Poll      time.Duration
		Provision bool
		OnRefused nhisync.OnRefused
		Guard     nhisync.Guard
		Settings  nhisync.Settings
	}
	fpMapping struct {
		Field, Name, Join, Ref, Read, Write string
		Direction                           nhisync.Direction
	}
)

// source returns the CEL source of a compiled rule.
func source(x any) string {
	if s, ok := x.(interface{ Expr() string }); ok {
		return s.Expr()
	}
	return ""
}

// fingerprint returns the sha256 (hex) of the config's canonical rendering.
func fingerprint(cfg *nhisync.Config) string {
	fp := fpConfig{Version: cfg.Version, Store: cfg.Store, SigningKey: cfg.SigningKey, BaseDir: cfg.BaseDir}
	for _, kn := range cfg.KindNames {
		k := cfg.Kinds[kn]
		fk := fpKind{Name: k.Name, Match: k.Match, CreateFrom: k.CreateFrom, RetireFrom: k.RetireFrom}
		for _, fname := range k.FieldNames {
			f := k.Fields[fname]
			fk.Fields = append(fk.Fields, fpField{
				Name: f.Name, Type: f.Type, Values: f.Values, To: f.To, Required: f.Required,
				Sensitive: f.Sensitive, Authority: f.Authority, Resolve: f.Resolve,
				WinsRemove: f.WinsRemove, StaleAfter: f.StaleAfter, ApproveTo: f.ApproveTo,
			})
		}
		for _, r := range k.Rules {
			fk.Rules = append(fk.Rules, [2]string{r.Name(), source(r)})
		}
		fp.Kinds = append(fp.Kinds, fk)
	}
	for _, sn := range cfg.SystemNames {
		s := cfg.Systems[sn]
		fs := fpSystem{
			Name: s.Name, Connector: s.Connector, Kind: s.Kind, ID: s.ID, Direction: s.Direction,
			Poll: s.Poll, Provision: s.Provision, OnRefused: s.OnRefused, Guard: s.Guard, Settings: s.Settings,
		}
		for _, m := range s.Fields {
			fs.Fields = append(fs.Fields, fpMapping{
				Field: m.Field, Name: m.Name, Join: m.Join, Ref: m.Ref,
				Read: m.ReadExpr, Write: m.WriteExpr, Direction: m.Direction,
			})
		}
		fp.Systems = append(fp.Systems, fs)
	}
	b, err := json.Marshal(fp)
	if err != nil {
		// Settings hold only what YAML decodes to, which JSON encodes;
		// should a value ever not encode, a Go rendering is still canonical.
		b = fmt.Appendf(nil, "%#v", fp)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
