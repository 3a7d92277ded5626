package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/nhisync/nhisync"
)

// linkLog tells a commit whether the heads a load kept of its links
// (nhisync.StoredLink) are still the stored ones: a kept head is trusted
// only when no commit wrote the link since the load began.
//
// Each commit of this store that writes links logs their keys (hashed)
// under the next number before its transaction commits; a load keeps, in
// StoredLink.Gen, the number of the last logged commit that had ended when
// the load began (every commit up to it is in the load's snapshot). A
// commit trusts a kept head when every logged write after that number is
// still in the log and none holds the link's key. Commits of other
// connections (another process, another Store on the same file) are seen
// by the writer connection's data_version moving between two of its link
// commits (a new writer connection, which has another data_version,
// counts as moved): they are logged as writing every link. A pass's next
// batch, loaded while the one before commits, so keeps its heads, and an
// outcome's links loaded just before its commit keep theirs; a link a
// commit wrote between its load and its commit is read again and written
// whole, as when every head was read.
type linkLog struct {
	mu sync.Mutex
	// done is the number of the last write whose commit has ended (or
	// failed); last, of the last one logged.
	done, last uint64
	// writes are the last logged writes, oldest first.
	writes []linkWrite
	// version is the writer connection's data_version at its last link
	// commit; known, whether there was one on this connection.
	version int64
	known   bool
	seed    maphash.Seed
}

// linkWrite is one logged commit's links: the sorted hashes of their keys,
// or all of them.
type linkWrite struct {
	n    uint64
	all  bool
	keys []uint64
}

// linkLogLen is how many writes the log keeps: a load older than the
// oldest has its heads read again.
const linkLogLen = 64

// loaded returns the number a load beginning now keeps (StoredLink.Gen).
func (g *linkLog) loaded() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}

// key hashes a link's key.
func (g *linkLog) key(system, ext string) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	h.WriteString(system)
	h.WriteByte(0)
	h.WriteString(ext)
	return h.Sum64()
}

// linkCommit is what one commit's link writer knows of the log.
type linkCommit struct {
	g *linkLog
	// since are the logged writes a kept head is checked against.
	since []linkWrite
	// n are the numbers this commit logged.
	n []uint64
}

// begin reads the writer connection's data_version inside the commit's
// transaction (its snapshot is the newest: the transaction is immediate)
// and logs a write of every link when another connection committed since
// this connection's last link commit.
func (g *linkLog) begin(ctx context.Context, tx *sql.Tx) (*linkCommit, error) {
	var version int64
	var marked bool
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT data_version FROM pragma_data_version),
		EXISTS (SELECT 1 FROM temp.sqlite_schema WHERE name = 'nhisync_writer')`).Scan(&version, &marked); err != nil {
		return nil, err
	}
	if !marked {
		// A connection of its own: its data_version says nothing of the
		// commits before it.
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE nhisync_writer (x)`); err != nil {
			return nil, err
		}
	}
	c := &linkCommit{g: g}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !marked || !g.known || version != g.version {
		c.logLocked(linkWrite{all: true})
	}
	g.version, g.known = version, true
	c.since = slices.Clone(g.writes)
	return c, nil
}

// logLocked appends w under the next number.
func (c *linkCommit) logLocked(w linkWrite) {
	g := c.g
	g.last++
	w.n = g.last
	c.n = append(c.n, w.n)
	if len(g.writes) == linkLogLen {
		g.writes = slices.Delete(g.writes, 0, 1)
	}
	g.writes = append(g.writes, w)
}

// fresh reports whether no write logged after gen holds the key.
func (c *linkCommit) fresh(gen uint64, system, ext string) bool {
	i, _ := slices.BinarySearchFunc(c.since, gen+1, func(w linkWrite, n uint64) int { return cmp.Compare(w.n, n) })
	rest := c.since[i:]
	if len(rest) == 0 {
		return true
	}
	if rest[0].n != gen+1 {
		return false // written after the load, and dropped from the log
	}
	k := c.g.key(system, ext)
	for _, w := range rest {
		if _, hit := slices.BinarySearch(w.keys, k); w.all || hit {
			return false
		}
	}
	return true
}

// wrote logs the keys of links, which the commit's transaction writes.
func (c *linkCommit) wrote(links []*nhisync.Link) {
	keys := make([]uint64, len(links))
	for i, l := range links {
		keys[i] = c.g.key(l.System, l.ExternalID)
	}
	slices.Sort(keys)
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	c.logLocked(linkWrite{keys: keys})
}

// end marks the commit's writes ended, once its transaction committed or
// rolled back: loads beginning after keep their numbers.
func (c *linkCommit) end() {
	if c == nil || len(c.n) == 0 {
		return
	}
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	c.g.done = max(c.g.done, c.n[len(c.n)-1])
}
