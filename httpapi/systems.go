package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/report"
)

// SystemJSON is one system's health (GET /api/v1/systems).
type SystemJSON struct {
	Name      string `json:"name"`
	Connector string `json:"connector"`
	Kind      string `json:"kind"`
	// Up is whether the last pass read it and it is not degraded.
	Up          bool       `json:"up"`
	Degraded    bool       `json:"degraded"`
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	LastRead    *time.Time `json:"last_read,omitempty"`
	LastWrite   *time.Time `json:"last_write,omitempty"`
	// LagSeconds is the time since the last read.
	LagSeconds   *float64 `json:"lag_seconds,omitempty"`
	Records      int      `json:"records"`
	OpenItems    int      `json:"open_items"`
	QueuedWrites int      `json:"queued_writes"`
	LastError    string   `json:"last_error,omitempty"`
	// FeedHolder is the replica running the system's feed, until
	// FeedLeaseExpires unless renewed (absent when nobody holds it).
	FeedHolder       string     `json:"feed_holder,omitempty"`
	FeedLeaseExpires *time.Time `json:"feed_lease_expires,omitempty"`
}

// Systems returns every system's health, in config order.
func (s *Server) Systems(ctx context.Context) ([]SystemJSON, error) {
	states, err := s.opt.Store.Systems(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*nhisync.SystemState{}
	for _, st := range states {
		byName[st.Name] = st
	}
	open := map[string]int{}
	cs, err := s.opt.Store.Conflicts(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		for _, p := range c.Proposals {
			open[p.System]++
		}
	}
	qs, err := s.opt.Store.QuarantineItems(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		return nil, err
	}
	for _, q := range qs {
		open[q.System]++
	}
	as, err := s.opt.Store.Approvals(ctx, nhisync.ItemFilter{Status: nhisync.StatusPending})
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		open[a.System]++
	}
	queued := map[string]int{}
	ws, err := s.opt.Store.OutboxWrites(ctx, "", "", time.Time{}, 0)
	if err != nil {
		return nil, err
	}
	for _, w := range ws {
		queued[w.System]++
	}
	now := s.opt.Now()
	out := make([]SystemJSON, 0, len(s.opt.Config.SystemNames))
	for _, name := range s.opt.Config.SystemNames {
		sys := s.opt.Config.Systems[name]
		j := SystemJSON{Name: name, Connector: sys.Connector, Kind: sys.Kind, OpenItems: open[name], QueuedWrites: queued[name]}
		if st := byName[name]; st != nil {
			j.Degraded = st.Health == nhisync.HealthDegraded
			j.Records = st.Records
			j.LastError = st.LastError
			if !st.LastReadAt.IsZero() {
				t := st.LastReadAt
				lag := now.Sub(t).Seconds()
				j.LastRead, j.LagSeconds = &t, &lag
			}
			if j.Degraded && st.PausedUntil.After(now) {
				t := st.PausedUntil
				j.PausedUntil = &t
			}
			up, known := s.opt.Metrics.readState(name)
			if !known {
				up = !st.LastReadAt.IsZero()
			}
			j.Up = up && !j.Degraded
		}
		if t := s.opt.Metrics.LastWrite(name); !t.IsZero() {
			j.LastWrite = &t
		}
		holder, expires, err := s.opt.Store.Lease(ctx, "feed/"+name)
		if err != nil {
			return nil, err
		}
		if holder != "" && expires.After(now) {
			j.FeedHolder, j.FeedLeaseExpires = holder, &expires
		}
		out = append(out, j)
	}
	return out, nil
}

func (s *Server) listSystems(c *call) error {
	out, err := s.Systems(c.r.Context())
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Server) startSync(c *call) error {
	if s.opt.Passes == nil {
		return nhisync.Errorf(nhisync.EUNAVAIL, "this server runs no passes (it is not `nhisync serve`)")
	}
	if err := drainBody(c.w, c.r); err != nil {
		return err
	}
	id, err := s.opt.Passes.StartPass(c.r.Context())
	if err != nil {
		return err
	}
	s.log.Info("full pass requested through the API", "caller", c.who.name, "pass", id)
	writeJSON(c.w, http.StatusAccepted, map[string]string{"pass": id})
	return nil
}

func (s *Server) getReport(c *call) error {
	res, err := s.report(c.r.Context(), c.param("name"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, res)
	return nil
}

// report runs a governance report (`nhisync report NAME -o json`);
// ENOTFOUND for an unknown name.
func (s *Server) report(ctx context.Context, name string) (*report.Result, error) {
	if !slices.Contains(report.Names, name) {
		return nil, nhisync.Errorf(nhisync.ENOTFOUND, "no report %q; reports: %s", name, strings.Join(report.Names, ", "))
	}
	rp, err := report.New(s.opt.Config, s.opt.Store, report.Options{Drift: s.opt.Engine.Drift})
	if err != nil {
		return nil, err
	}
	return rp.Run(ctx, name)
}

// checkpointJSON is GET /api/v1/audit/checkpoint.
type checkpointJSON struct {
	Size     int64     `json:"size"`
	RootHash []byte    `json:"root_hash"`
	Note     string    `json:"note"`
	Time     time.Time `json:"time"`
}

func (s *Server) latestCheckpoint(c *call) error {
	cp, err := s.opt.Store.LatestCheckpoint(c.r.Context())
	if err != nil {
		return err
	}
	if cp == nil {
		return nhisync.Errorf(nhisync.ENOTFOUND, "no signed checkpoint yet: the first pass signs one")
	}
	writeJSON(c.w, http.StatusOK, checkpointJSON{Size: cp.Size, RootHash: cp.Root, Note: string(cp.Note), Time: cp.At})
	return nil
}

func (s *Server) auditProof(c *call) error {
	v := c.param("seq")
	seq, err := strconv.ParseInt(v, 10, 64)
	if err != nil || seq <= 0 {
		return nhisync.Errorf(nhisync.EINVALID, "seq must be a positive number, got %q", v)
	}
	p, err := audit.InclusionProof(c.r.Context(), s.opt.Store, seq, nil)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, p)
	return nil
}
func reportNames() []string { return report.Names }
