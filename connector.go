package nhisync

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
)

// Observation is one record as a system holds it now, in canonical form.
type Observation struct {
	// ID is the system's own stable id of the record.
	ID string
	// Values are aligned with System.Fields: Values[i] is the value of the
	// field mapped by System.Fields[i] (zero for write-only mappings).
	Values []Value
	// Modified is the system's own modification time of the record, when
	// the connector has one (zero otherwise).
	Modified time.Time
	// Actor is who changed the record in the system, when it tells
	// (zero otherwise); it feeds separation of duties.
	Actor string
}

// Connector reaches one system. It must stream a snapshot and apply
// conditional writes; change feeds and health checks are optional
// interfaces (Changer, Checker) the engine detects.
type Connector interface {
	// Snapshot streams every record of the system to emit. emit must not
	// keep obs.Values after it returns. A snapshot that fails part-way
	// returns an error; the engine then takes nothing from it as vanished.
	Snapshot(ctx context.Context, emit func(obs Observation) error) error
	// Apply applies writes, each only if the record still holds every Old
	// value (SPEC §3.7), and returns one result per write in order. An
	// error return means the whole batch failed and nothing was applied.
	Apply(ctx context.Context, writes []Write) ([]WriteResult, error)
	// Close releases the connector's resources.
	Close() error
}

// Changer is a connector that can read only what changed since a cursor.
// The cursor is opaque to the engine; "" asks for everything.
type Changer interface {
	Changes(ctx context.Context, cursor string, emit func(obs Observation) error) (next string, err error)
}

// WholeApplier is a connector whose every Apply call costs a pass over the
// whole system (a file rewritten in full). When ApplyWhole reports true the
// engine hands it all of a system's due writes in one Apply call instead of
// chunks, so a pass rewrites the system once; the outcome is still
// committed a chunk at a time.
type WholeApplier interface {
	ApplyWhole() bool
}

// Scrubber is a connector that holds credentials (a password, a token, a
// DSN): Scrub returns s with each of them replaced, as the connector's own
// errors have them. The engine scrubs with it what it says of a failure
// the connector did not put into words itself, such as a panic's value,
// before it reaches a log, the summary or the stored system state.
type Scrubber interface {
	Scrub(s string) string
}

// LogSetter is a connector that logs what no write's outcome says (a
// fallback it took, a server's refusal). The process hands it its own
// logger, so those lines go where the process's own lines go.
type LogSetter interface {
	SetLogger(l *slog.Logger)
}

// Checker is a connector that can check it reaches its system.
type Checker interface {
	Check(ctx context.Context) error
}

// Write is a conditional update of one record in a system: every change
// applies only if the record still holds every Old value. A Create write
// makes a new record (systems with provision: true) and has an empty ID.
type Write struct {
	ID      string
	Create  bool
	Changes []Change
}

// Change sets one canonical field from Old to New.
type Change struct {
	Field string
	Old   Value
	New   Value
	// Reason is why the new value is golden: the source and the rule that
	// chose it (e.g. "cmdb: priority: cmdb's change wins"), for systems
	// that keep a message with a change, such as a git commit. It never
	// quotes a sensitive value.
	Reason string
}

// WriteStatus is the outcome of one Write.
type WriteStatus string

// Write outcomes.
const (
	// Applied: the record now holds every New value (also when it already
	// did, so a retried write is harmless).
	WriteApplied WriteStatus = "applied"
	// WriteStale: the record no longer holds an Old value; nothing was
	// changed and the record must be re-observed.
	WriteStale WriteStatus = "stale"
	// WriteMissing: the record is gone from the system.
	WriteMissing WriteStatus = "missing"
	// WriteFailed: the write failed for this record alone; Err says why.
	WriteFailed WriteStatus = "failed"
)

// WriteResult is the outcome of one Write. ID is the new record's id
// after a Create.
type WriteResult struct {
	Status WriteStatus
	ID     string
	Err    error
}

// Driver opens connectors of one kind and lists the settings it accepts
// beyond those every system has, so config can refuse unknown keys.
type Driver struct {
	// Settings lists the connector's own setting names.
	Settings []string
	// Validate checks settings without reaching the system; its errors
	// should be *Error with Code EINVALID naming the setting.
	Validate func(sys *System, kind *Kind) error
	// Open returns a connector for sys, whose records are of kind.
	Open func(ctx context.Context, sys *System, kind *Kind) (Connector, error)
}

var (
	driversMu sync.RWMutex
	drivers   = map[string]Driver{}
)

// RegisterDriver makes a connector available by name. It panics when the
// name is taken, as database/sql.Register does.
func RegisterDriver(name string, d Driver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, dup := drivers[name]; dup {
		panic(fmt.Sprintf("nhisync: connector %q registered twice", name))
	}
	drivers[name] = d
}

// LookupDriver returns the driver registered under name.
func LookupDriver(name string) (Driver, bool) {
	driversMu.RLock()
	defer driversMu.RUnlock()
	d, ok := drivers[name]
	return d, ok
}

// DriverNames returns the registered connector names, sorted.
func DriverNames() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CommonSettings are the settings every system has, whatever its connector.
var CommonSettings = []string{"connector", "kind", "fields", "id", "direction", "poll", "provision", "on_refused", "guard"}

// IsCommonSetting reports whether key is one of CommonSettings.
func IsCommonSetting(key string) bool { return slices.Contains(CommonSettings, key) }

// Capabilities is what a connector found its system offers, as
// `nhisync check --connect` reports it: whether it reads only what changed
// (else every pass reads a snapshot) and whether the system itself refuses
// a write whose target changed (else the connector reads, compares and
// writes, with a window). Notes say how, or why not.
type Capabilities struct {
	Incremental       bool
	IncrementalNote   string
	ConditionalWrites bool
	ConditionalNote   string
}

// CapabilityTeller is a connector that can say what its system offers. Call
// it after Check: some connectors learn it from the server.
type CapabilityTeller interface {
	Capabilities(ctx context.Context) Capabilities
}

// OpenConnectors opens the connector of every system of cfg, each with its
// kind, and returns them by system name. When one cannot be opened (or
// its connector is not in this build) it closes those it opened and
// returns the error, naming the system. `nhisync` itself opens systems
// one by one so that one unreachable system fails alone; tools and tests
// that need all of them use this.
func OpenConnectors(ctx context.Context, cfg *Config) (map[string]Connector, error) {
	conns := make(map[string]Connector, len(cfg.SystemNames))
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		d, ok := LookupDriver(sys.Connector)
		if !ok {
			CloseConnectors(conns)
			return nil, Errorf(EINVALID, "system %s: no connector %q in this build", name, sys.Connector)
		}
		c, err := d.Open(ctx, sys, cfg.Kinds[sys.Kind])
		if err != nil {
			CloseConnectors(conns)
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		conns[name] = c
	}
	return conns, nil
}

// CloseConnectors closes every connector of conns and returns the first
// error.
func CloseConnectors(conns map[string]Connector) error {
	var first error
	for _, c := range conns {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
