package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// Metrics are the service's Prometheus metrics (SPEC §7) on a registry of
// their own, with the Go runtime and process collectors.
type Metrics struct {
	cfg   *nhisync.Config
	store nhisync.Store
	reg   *prometheus.Registry

	passDuration prometheus.Histogram
	records      prometheus.Gauge
	openItems    *prometheus.GaugeVec
	writes       *prometheus.CounterVec
	systemUp     *prometheus.GaugeVec
	propagation  prometheus.Histogram
	leases       *prometheus.GaugeVec

	mu sync.Mutex
	// changes are the writes of each change confirmed since the last
	// flush: the time the change was read and its latest confirmation.
	changes map[changeKey]*changeTimes
	// lastWrite is when a write last landed in each system.
	lastWrite map[string]time.Time
	// readOK is whether the last pass read each system.
	readOK map[string]bool
}

type changeKey struct {
	record int64
	field  string
	value  string
	read   time.Time
}

type changeTimes struct{ read, last time.Time }

// NewMetrics makes the metrics of a config's systems.
func NewMetrics(cfg *nhisync.Config, store nhisync.Store) *Metrics {
	m := &Metrics{
		cfg: cfg, store: store, reg: prometheus.NewRegistry(),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nhisync_pass_duration_seconds", Help: "Wall time of a sync pass.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		records: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nhisync_records", Help: "Golden records in the store."}),
		openItems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nhisync_open_items", Help: "Open conflicts, quarantine items and pending approvals.",
		}, []string{"queue"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhisync_writes_total", Help: "Writes sent to systems, by outcome (applied, stale, failed).",
		}, []string{"system", "result"}),
		systemUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nhisync_system_up", Help: "1 when the last pass read the system and it is not degraded.",
		}, []string{"system"}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nhisync_propagation_seconds", Help: "Time from a change being read to its last write confirmed.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		leases: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nhisync_leases_held", Help: "1 for each lease this process holds (pass, feed/SYSTEM).",
		}, []string{"lease"}),
		changes:   map[changeKey]*changeTimes{},
		lastWrite: map[string]time.Time{},
		readOK:    map[string]bool{},
	}
	m.reg.MustRegister(m.passDuration, m.records, m.openItems, m.writes, m.systemUp, m.propagation, m.leases,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, q := range []string{"conflicts", "quarantine", "approvals"} {
		m.openItems.WithLabelValues(q)
	}
	if wr, ok := store.(nhisync.WALReporter); ok {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "nhisync_store_wal_frames", Help: "Pages in the store's write-ahead log, copied back or not (SQLite).",
			}, func() float64 { return float64(wr.WALStatus().Frames) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "nhisync_store_checkpoints_total", Help: "Checkpoints of the store's write-ahead log run since it opened (SQLite).",
			}, func() float64 { return float64(wr.WALStatus().Checkpoints) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "nhisync_store_checkpoint_failures_total", Help: "Checkpoints of the store's write-ahead log that failed (SQLite); the log grows until one succeeds.",
			}, func() float64 { return float64(wr.WALStatus().Failures) }),
		)
	}
	m.leases.WithLabelValues("pass")
	for _, name := range cfg.SystemNames {
		m.systemUp.WithLabelValues(name)
		m.leases.WithLabelValues("feed/" + name)
		for _, r := range []string{"applied", "stale", "failed"} {
			m.writes.WithLabelValues(name, r)
		}
	}
	return m
}

// LeaseHeld sets nhisync_leases_held{lease} (the service's Observer).
func (m *Metrics) LeaseHeld(lease string, held bool) {
	v := 0.0
	if held {
		v = 1
	}
	m.leases.WithLabelValues(lease).Set(v)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObservePass records a finished pass: its duration, record count, per
// system reads and writes.
func (m *Metrics) ObservePass(sum *engine.Summary, took time.Duration) {
	m.passDuration.Observe(took.Seconds())
	m.records.Set(float64(sum.Records))
	m.mu.Lock()
	for name, ss := range sum.Systems {
		if ss.Mode != nhisync.ModeSkipped || ss.ReadFailed {
			m.readOK[name] = !ss.ReadFailed
		}
	}
	m.mu.Unlock()
	m.ObserveWrites(sum)
}

// ObserveWrites counts the writes of a pass or a drain.
func (m *Metrics) ObserveWrites(sum *engine.Summary) {
	for name, ss := range sum.Systems {
		m.writes.WithLabelValues(name, "applied").Add(float64(ss.Written))
		m.writes.WithLabelValues(name, "stale").Add(float64(ss.Stale))
		m.writes.WithLabelValues(name, "failed").Add(float64(ss.Failed))
	}
}

// ObserveWrite is the engine's write observer (engine.WithWriteObserver):
// it remembers when each change's writes were confirmed.
func (m *Metrics) ObserveWrite(o *nhisync.OutboxWrite, status nhisync.WriteStatus, at time.Time) {
	if status != nhisync.WriteApplied {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastWrite[o.System] = at
	k := changeKey{record: o.RecordID, field: o.Field, value: o.New.String(), read: o.Created}
	ct := m.changes[k]
	if ct == nil {
		ct = &changeTimes{read: o.Created}
		m.changes[k] = ct
	}
	if at.After(ct.last) {
		ct.last = at
	}
}

// FlushPropagation observes, for every change whose writes were confirmed
// since the last flush, the time from its read to its last confirmation.
// The service calls it after each pass and drain: by then every write of
// the changes it decided has gone out or been queued for retry.
func (m *Metrics) FlushPropagation() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, ct := range m.changes {
		m.propagation.Observe(max(0, ct.last.Sub(ct.read).Seconds()))
		delete(m.changes, k)
	}
}

// LastWrite returns when a write last landed in system (zero if none since
// the service started).
func (m *Metrics) LastWrite(system string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastWrite[system]
}

// readState returns whether the last pass read system, and whether any
// pass was seen.
func (m *Metrics) readState(system string) (ok, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, known = m.readOK[system]
	return ok, known
}

// Refresh recomputes the gauges read from the store: open items and
// system health.
func (m *Metrics) Refresh(ctx context.Context) {
	counts, err := openCounts(ctx, m.store)
	if err == nil {
		for q, n := range counts {
			m.openItems.WithLabelValues(q).Set(float64(n))
		}
	}
	states, err := m.store.Systems(ctx)
	if err != nil {
		return
	}
	for _, st := range states {
		if m.cfg.Systems[st.Name] == nil {
			continue
		}
		up, known := m.readState(st.Name)
		if !known {
			up = !st.LastReadAt.IsZero()
		}
		v := 0.0
		if up && st.Health != nhisync.HealthDegraded {
			v = 1
		}
		m.systemUp.WithLabelValues(st.Name).Set(v)
	}
}

// CountRecords sets nhisync_records from the store (at start, before the
// first pass reports it).
func (m *Metrics) CountRecords(ctx context.Context) error {
	n := 0
	err := m.store.ScanRecordHeads(ctx, func(nhisync.RecordHead) error { n++; return nil })
	if err != nil {
		return fmt.Errorf("count records: %w", err)
	}
	m.records.Set(float64(n))
	return nil
}

// openCounts counts open conflicts, quarantine items and pending approvals.
func openCounts(ctx context.Context, s nhisync.Store) (map[string]int, error) {
	c, err := s.Conflicts(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		return nil, err
	}
	q, err := s.QuarantineItems(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		return nil, err
	}
	a, err := s.Approvals(ctx, nhisync.ItemFilter{Status: nhisync.StatusPending})
	if err != nil {
		return nil, err
	}
	return map[string]int{"conflicts": len(c), "quarantine": len(q), "approvals": len(a)}, nil
}
