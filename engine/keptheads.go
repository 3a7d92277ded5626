package engine

import (
	"context"
	"sync"

	"github.com/nhisync/nhisync"
)

// HeadCache keeps the link heads a full read loaded (a headTable per
// system) for the next pass, in a process that runs pass after pass on
// one store (nhisync serve; WithHeadCache). A quiet pass reads every
// system in full and compares each record's hash with its link's head: at
// a million records per system, loading the heads from the store and
// placing them in the table was about a sixth of such a pass's CPU time
// (at 100,000, BenchmarkQuietPassKeptHeadsEstate100k: 0.69 CPU-s a pass
// against BenchmarkQuietPassEstate100k's 0.78-0.81). When no link head
// changed since, the next pass takes the tables as they are.
//
// "No link head changed" is the store's word (nhisync.LinksVersioner):
// every commit changing a link's record, status or hash, of any process,
// stores a new version drawn at random. A pass reads the version before
// it loads any head; at its end, once its last commit is done, it reads it
// again, and keeps its tables only when the two are equal: then nothing
// changed a head between the load and now, the pass's own commits
// included, and the tables are the store's heads. The next pass takes a
// table only when the version is still the one it was kept under, and
// the system's mapping and the mapping its hashes were stored with are
// those it was kept with. A pass that changed a head (any pass with
// decisions, in general) keeps nothing, and the next loads the heads again.
//
// A table kept holds about 60 bytes per link (12 of slot, 48 of head)
// and the link's id, between passes; a process running one pass only
// (the CLI) has no use for it and does not keep one.
type HeadCache struct {
	mu   sync.Mutex
	kept map[string]*keptHeads
}

// keptHeads is one system's table and what it was kept under.
type keptHeads struct {
	version uint64
	// fp is the system's mapping fingerprint, mapping the one its stored
	// hashes were taken with (nhisync.SystemState.Mapping): the table's
	// heads have a hash only when the two were equal.
	fp, mapping string
	table       *headTable
}

// NewHeadCache returns an empty cache.
func NewHeadCache() *HeadCache { return &HeadCache{kept: map[string]*keptHeads{}} }

// WithHeadCache makes the engine keep the link heads a pass loads in c
// for the next pass, when its store tells whether they changed
// (nhisync.LinksVersioner). One cache serves one store and one config:
// engines sharing it must run on the same store with the same config.
func WithHeadCache(c *HeadCache) Option { return func(e *Engine) { e.heads = c } }

// take returns the table kept for system under version, fp and mapping,
// removed from the cache (a pass running beside loads its own), or nil.
func (c *HeadCache) take(system string, version uint64, fp, mapping string) *keptHeads {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.kept[system]
	delete(c.kept, system)
	if k == nil || k.version != version || k.fp != fp || k.mapping != mapping {
		return nil
	}
	return k
}

// put keeps tables under version, replacing what was kept.
func (c *HeadCache) put(version uint64, tables map[string]*keptHeads) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, k := range tables {
		k.version = version
		c.kept[name] = k
	}
}

// drop forgets every table.
func (c *HeadCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.kept)
}

// headsVersion reads the links' version before the pass loads any head,
// when the engine keeps heads and its store tells the version: p.version
// and p.versioned. A store that fails to tell it costs the pass its kept
// heads, nothing else: the pass loads them.
func (p *pass) headsVersion(ctx context.Context) {
	if p.e.heads == nil {
		return
	}
	lv, ok := p.e.store.(nhisync.LinksVersioner)
	if !ok {
		return
	}
	v, err := lv.LinksVersion(ctx)
	if err != nil {
		p.e.heads.drop()
		p.e.log.Debug("link heads not kept: the store's links version could not be read", "error", err)
		return
	}
	p.version, p.versioned = v, true
}

// takeHeads gives r the table kept for its system, reset for this pass,
// when one was kept under the pass's version: r's heads are then loaded.
func (p *pass) takeHeads(r *sysRead, st *nhisync.SystemState, ss *SystemSummary) bool {
	if !p.versioned {
		return false
	}
	k := p.e.heads.take(r.sys.Name, p.version, r.fp, st.Mapping)
	if k == nil {
		return false
	}
	k.table.clearMarks()
	// Every head in the table is a stored link's (addHead counts each
	// once): the table's count is the read's stored.
	r.heads, r.stored = k.table, k.table.n
	ss.HeadsKept = true
	p.e.log.Debug("link heads kept from the last pass", "system", r.sys.Name, "heads", r.stored)
	return true
}

// keepHeads notes r's table, once correlation is done with it, to be kept
// at the pass's end (keepAll). Only a full read's table holds every head,
// and only one whose heads correlation left as loaded (a head it linked
// to a record is the store's only once a commit wrote it, and a plan
// commits nothing) holds the store's.
func (p *pass) keepHeads(r *sysRead) {
	if !p.versioned || r.someHeads || !r.full || r.heads == nil || r.headsMoved {
		return
	}
	if p.keep == nil {
		p.keep = map[string]*keptHeads{}
	}
	p.keep[r.sys.Name] = &keptHeads{fp: r.fp, mapping: r.mapping, table: r.heads}
}

// keepAll keeps the tables noted by keepHeads once the pass is done,
// when the links' version is the one read before they were loaded.
func (p *pass) keepAll(ctx context.Context) {
	tables := p.keep
	p.keep = nil
	if len(tables) == 0 {
		return
	}
	v, err := p.e.store.(nhisync.LinksVersioner).LinksVersion(ctx)
	if err != nil {
		p.e.log.Debug("link heads not kept: the store's links version could not be read", "error", err)
		return
	}
	if v != p.version {
		p.e.log.Debug("link heads not kept: a commit changed link heads during the pass")
		return
	}
	p.e.heads.put(v, tables)
}
