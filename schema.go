package nhisync

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is a validated nhisync.yaml. The config package builds it; every
// other package only reads it.
type Config struct {
	Version int
	// Store is the store's URL: "sqlite:PATH" (default
	// sqlite:./nhisync-data/nhisync.db) or "postgres://…".
	Store string
	// SigningKey is the ed25519 key file that signs audit checkpoints
	// (default ./nhisync-data/audit.key), created on first run.
	SigningKey string
	// AuditSecret is the file holding the HMAC-SHA256 secret that hashes
	// sensitive values in the audit log (default audit.hmac beside the
	// signing key), created on first run with the key's file rules.
	AuditSecret string
	// AuditPublish, when set, is a file outside the store to which every
	// new signed checkpoint is appended (audit.publish; default none).
	AuditPublish string
	// Kinds and Systems by name; KindNames and SystemNames keep file order.
	Kinds       map[string]*Kind
	KindNames   []string
	Systems     map[string]*System
	SystemNames []string
	// Path is the file the config came from; BaseDir the directory relative
	// paths in it are taken against.
	Path    string
	BaseDir string
	// Fingerprint changes whenever anything that affects decisions changes.
	Fingerprint string
	// Reports tunes `nhisync report`; it never changes decisions.
	Reports Reports
	// Reconcile is how often `nhisync serve` runs a full pass besides the
	// passes its feeds start (`reconcile:`, default 1h).
	Reconcile time.Duration
	// Serve configures `nhisync serve` (`serve:`); it never changes
	// decisions.
	Serve Serve
	// MemoryLimit is the soft limit, in bytes, the Go runtime keeps the
	// process's memory under by collecting garbage sooner
	// (`memory_limit:`, as GOMEMLIMIT, which wins when set; 0: none).
	MemoryLimit int64
}

// Serve holds the settings of `nhisync serve`.
type Serve struct {
	// OIDC, when set, lets people sign in to the console with an OpenID
	// Connect provider (`serve.oidc`).
	OIDC *OIDC
}

// OIDC configures console sign-in with an OpenID Connect provider.
type OIDC struct {
	// Issuer is the provider's issuer URL (discovery is read from it).
	Issuer       string
	ClientID     string
	ClientSecret string
	// RolesClaim names the ID token claim (a string or a list of strings)
	// holding the person's nhisync role; the highest role listed counts.
	// Default "nhisync_roles". A person with no role may not sign in.
	RolesClaim string
	// RedirectURL is where the provider sends people back (default: the
	// console's /auth/callback on the address it is served at).
	RedirectURL string
}

// Reports holds the settings of governance reports (`reports:` in the file).
type Reports struct {
	// Overprivileged is a CEL expression over a record's fields
	// (`reports.hygiene.overprivileged`); a record of a kind it compiles
	// for and makes true is listed as overprivileged. "" turns it off.
	Overprivileged string
	// OverprivilegedKinds lists the kinds whose fields the expression
	// reads (it compiled for them), in config order.
	OverprivilegedKinds []string
}

// Kind is one type of record and the rules its fields are decided by.
type Kind struct {
	Name string
	// Match lists the fields whose values, trimmed and case-insensitive,
	// correlate records across systems.
	Match []string
	// CreateFrom lists the systems whose unknown records become golden
	// records; RetireFrom those whose vanishing records are decommissioned.
	CreateFrom []string
	RetireFrom []string
	Fields     map[string]*Field
	FieldNames []string
	Rules      []Rule
}

// Field returns the named field or nil.
func (k *Kind) Field(name string) *Field { return k.Fields[name] }

// IsMatch reports whether field is part of the match key.
func (k *Kind) IsMatch(field string) bool { return slices.Contains(k.Match, field) }

// Strategy settles concurrent proposals for one field (SPEC §3.3).
type Strategy string

// Strategies.
const (
	ResolvePriority  Strategy = "priority"
	ResolveLatest    Strategy = "latest"
	ResolveMerge     Strategy = "merge"
	ResolveStrictest Strategy = "strictest"
	ResolveManual    Strategy = "manual"
)

// Strategies lists every valid strategy.
var Strategies = []Strategy{ResolvePriority, ResolveLatest, ResolveMerge, ResolveStrictest, ResolveManual}

// Field is one canonical field of a kind.
type Field struct {
	Name string
	Type FieldType
	// Values are the allowed values of an enum, in strictness order.
	Values []string
	// To is the kind a ref/refs field points at.
	To        string
	Required  bool
	Sensitive bool
	// Authority lists, highest first, the systems allowed to set the field;
	// empty means every mapped system at equal rank.
	Authority []string
	// Resolve defaults to priority.
	Resolve Strategy
	// WinsRemove makes merge remove an element one system added and another
	// removed concurrently (default: add wins).
	WinsRemove bool
	// StaleAfter: a value whose setter has not been seen holding it for
	// this long may be replaced by a lower-ranked system (0 = never stale).
	StaleAfter time.Duration
	// ApproveTo lists systems whose writes of this field wait for approval.
	ApproveTo []string
	// MaxAge, on a time field, is how old its value may be before
	// `nhisync report stale` lists it (a rotation date older than this is
	// a long-lived secret); 0 means no limit. It never changes decisions.
	MaxAge time.Duration
}

// Allowed reports whether system may set the field.
func (f *Field) Allowed(system string) bool {
	return len(f.Authority) == 0 || slices.Contains(f.Authority, system)
}

// Rank returns the rank of a setter: 0 is highest. Without an authority
// list every system ranks 0. A person ranks with the highest system; a
// setter no longer allowed ranks below every allowed one.
func (f *Field) Rank(setter string) int {
	if len(f.Authority) == 0 || IsPerson(setter) {
		return 0
	}
	if i := slices.Index(f.Authority, setter); i >= 0 {
		return i
	}
	return len(f.Authority)
}

// Strictness returns the position of an enum value in Values (-1 if absent).
func (f *Field) Strictness(v Value) int { return slices.Index(f.Values, v.Text()) }

// NeedsApproval reports whether writes of this field to system wait for a person.
func (f *Field) NeedsApproval(system string) bool { return slices.Contains(f.ApproveTo, system) }

// PersonPrefix marks a setter or actor that is a person, not a system.
const PersonPrefix = "person:"

// IsPerson reports whether an actor names a person.
func IsPerson(actor string) bool { return strings.HasPrefix(actor, PersonPrefix) }

// Person returns the actor name of a person.
func Person(name string) string { return PersonPrefix + name }

// Actor is the actor nhisync names itself in the audit log and on what it
// does by itself: clearing quarantine when a source changes, closing a
// conflict a retirement settled, planning writes, requesting a guard's
// approval.
const Actor = "nhisync"

// FieldLifecycle is the enum field a retirement sets (SPEC §3.6: a record
// vanishing from a retire_from system), to LifecycleDecommissioned. A kind
// with retire_from must have it, with that value among its values.
const (
	FieldLifecycle          = "lifecycle"
	LifecycleDecommissioned = "decommissioned"
)

// How a pass read a system (SystemSummary.Mode): every record, only the
// changes since its cursor, not at all (no connector, or not among the
// systems asked for), its read failed, or it rests after failures.
const (
	ModeFull        = "full"
	ModeIncremental = "incremental"
	ModeSkipped     = "skipped"
	ModeFailed      = "failed"
	ModePaused      = "paused"
)

// Rule is a compiled validation rule (CEL). A proposal that makes Check
// return false is quarantined with the rule's name.
type Rule interface {
	Name() string
	// Fields lists the canonical fields the rule reads; it runs only for
	// proposals of those fields.
	Fields() []string
	// ReadsSystem reports whether Check reads system: a rule that does not
	// is a function of its fields alone, and its verdict on one proposal
	// holds for another that leaves them alike.
	ReadsSystem() bool
	// Check evaluates the rule on a record's field values, system being
	// the system that proposes the change ("" when there is none, or for
	// a person's value).
	Check(fields map[string]Value, system string) (bool, error)
}

// Direction says which way data flows between nhisync and a system or field.
type Direction string

// Directions.
const (
	DirBoth  Direction = "both"
	DirRead  Direction = "read"
	DirWrite Direction = "write"
)

// Reads reports whether nhisync reads from the system or field.
func (d Direction) Reads() bool { return d != DirWrite }

// Writes reports whether nhisync writes to the system or field.
func (d Direction) Writes() bool { return d != DirRead }

// OnRefused says what happens to a system whose proposal was refused.
type OnRefused string

// OnRefused choices.
const (
	Repair OnRefused = "repair" // write the golden value back (default)
	Report OnRefused = "report" // leave the system as is and list it as drift
)

// System is one external place that holds records of one kind.
type System struct {
	Name      string
	Connector string
	Kind      string
	// Fields map canonical fields to native ones, in config order.
	Fields []*Mapping
	// ID is the native field holding the system's stable id; "" means the
	// mapped match fields together.
	ID        string
	Direction Direction
	Poll      time.Duration
	Provision bool
	OnRefused OnRefused
	Guard     Guard
	// Settings holds the connector's own settings (path, dsn, table, …)
	// after ${VAR} expansion.
	Settings Settings
	// BaseDir is the directory relative paths in Settings are taken against.
	BaseDir string
	// Pos is "file:line" of the system in the config, for error messages.
	Pos string
}

// Mapping returns the mapping of a canonical field, or nil.
func (s *System) Mapping(field string) *Mapping {
	for _, m := range s.Fields {
		if m.Field == field {
			return m
		}
	}
	return nil
}

// Reads reports whether nhisync reads field from the system.
func (s *System) Reads(field string) bool {
	m := s.Mapping(field)
	return m != nil && s.Direction.Reads() && m.Direction.Reads()
}

// Writes reports whether nhisync may write field to the system.
func (s *System) Writes(field string) bool {
	m := s.Mapping(field)
	return m != nil && s.Direction.Writes() && m.Direction.Writes()
}

// Mapping ties a canonical field to a native one.
type Mapping struct {
	Field string // canonical field name
	Type  FieldType
	// Name is the native column, attribute or path (dot-separated keys,
	// ["…"] for a key holding dots or slashes).
	Name      string
	Direction Direction
	// Join separates set elements in text cells (default ",").
	Join string
	// Read and Write transform native ↔ canonical values; nil is identity.
	Read  Transform
	Write Transform
	// ReadExpr and WriteExpr are the source text of Read and Write, kept
	// for fingerprints and messages.
	ReadExpr  string
	WriteExpr string
	// Ref names the kind a DN-valued native attribute resolves through.
	Ref string
}

// Separator returns the set separator for text cells.
func (m *Mapping) Separator() string {
	if m.Join == "" {
		return ","
	}
	return m.Join
}

// Transform is a compiled read or write expression of a mapping.
type Transform interface {
	// Apply maps a value: for reads, native → canonical; for writes,
	// canonical → native. In and out are Values (a native number or
	// boolean arrives as its text).
	Apply(v Value) (Value, error)
}

// Guard is a system's blast-radius guard (SPEC §3.11).
type Guard struct {
	Off bool
	// Max is an absolute count, Percent a share of the system's records;
	// when both are zero the default applies: more than 10% and more than 25.
	Max     int
	Percent float64
}

// Limit returns how many overwrites of non-empty values (or retirements)
// one pass may make in a system holding total records.
func (g Guard) Limit(total int) int {
	switch {
	case g.Off:
		return int(^uint(0) >> 1)
	case g.Max > 0:
		return g.Max
	case g.Percent > 0:
		return int(float64(total) * g.Percent / 100)
	default:
		return max(25, total/10)
	}
}

// Settings are a connector's own settings.
type Settings map[string]any

// String returns a string setting ("" if absent).
func (s Settings) String(key string) string {
	switch v := s[key].(type) {
	case string:
		return v
	case nil:
		return ""
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	default:
		return ""
	}
}

// Bool returns a boolean setting (false if absent).
func (s Settings) Bool(key string) bool {
	switch v := s[key].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

// Int returns an integer setting (def if absent).
func (s Settings) Int(key string, def int) int {
	switch v := s[key].(type) {
	case int:
		return v
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// Map returns a nested mapping setting (nil if absent).
func (s Settings) Map(key string) Settings {
	if m, ok := s[key].(map[string]any); ok {
		return Settings(m)
	}
	return nil
}
