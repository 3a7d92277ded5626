package engine

import (
	"context"
	"fmt"

	"github.com/nhisync/nhisync"
)

// recIndex is a pass's golden key index: kind → normalized match key →
// record ID, as the pass changes it (records it creates, keys that move).
//
// Full, it holds every golden record of the config's kinds
// (ScanRecordHeads): a first pass, or one with many observations to match,
// loads it. Otherwise it holds the keys the pass asked the store about
// (RecordIDsByKey), those it learnt no record holds (free) and those it
// gave: a quiet or drifting pass matches a few observations, and most
// match none (a system's records no golden record has), while loading
// every head costs about a microsecond and a map entry per record (0.2
// CPU-s at 300,000). Either way a sync pass gets every answer the full
// index would give: a key the pass did not change holds in the store what
// it held when the pass began (the pass holds the lease, and every key it
// changes it knows), and a key of a kind the config does not have is free
// unless the pass gave it. A dry run (plan) holds no lease: a sync
// committing beside it may change keys between two of its look-ups, where
// the full index read them at one moment (its records are loaded as it
// decides either way).
type recIndex struct {
	store nhisync.Store
	cfg   *nhisync.Config
	ids   map[string]map[string]int64
	// free holds, by kind, the keys no record holds (not full only).
	free map[string]map[string]struct{}
	full bool
	// records counts the keys ids would hold were it full: the pass's
	// Summary.Records.
	records int
	// text holds the keys a full load read.
	text texts
	// err is the first failed look-up of candidates (which returns
	// none): correlation fails with it.
	err error
}

// lookupChunk is how many keys one RecordIDsByKey asks for.
const lookupChunk = 1000

// lazyShare: a pass looks keys up (in chunks) while it needs at most one
// in lazyShare of the store's records, and loads every head otherwise. On
// SQLite a key looked up costs about as much as four heads loaded into
// the index (100,000 records: 30 µs a key in chunks of 1,000, 8.3 µs a
// head, on a loaded machine), so at the threshold the look-ups cost about
// half the load, and less than it with the index's weight on the
// collector. A variable for tests (0: always load every head; -1: never,
// unless correlation needs every key).
var lazyShare = 8

func newRecIndex(st nhisync.Store, cfg *nhisync.Config) *recIndex {
	return &recIndex{store: st, cfg: cfg, ids: map[string]map[string]int64{}, free: map[string]map[string]struct{}{}}
}

// loadAll reads every golden record's head; est is about how many there
// are (sizes the maps).
func (x *recIndex) loadAll(ctx context.Context, est int) error {
	kinds := x.cfg.KindNames
	ids := make(map[string]map[string]int64, len(kinds))
	for _, k := range kinds {
		ids[k] = make(map[string]int64, est/len(kinds))
	}
	err := x.store.ScanRecordHeads(ctx, func(h nhisync.RecordHead) error {
		if m := ids[h.Kind]; m != nil {
			m[x.text.clone(h.MatchKey)] = h.ID
		}
		return nil
	})
	if err != nil {
		return err
	}
	n := 0
	for _, m := range ids {
		n += len(m)
	}
	x.ids, x.free, x.full, x.records = ids, nil, true, n
	return nil
}

// count starts a lazy index: it counts the store's records of the config's
// kinds. An empty store's index is complete as it is.
func (x *recIndex) count(ctx context.Context) error {
	counts, err := x.store.CountRecords(ctx)
	if err != nil {
		return err
	}
	x.records = 0
	for _, k := range x.cfg.KindNames {
		x.records += counts[k]
	}
	if x.records == 0 {
		x.full, x.free = true, nil
	}
	return nil
}

// settle loads every head when a lazy index would be asked about need
// keys or more, or about keys only the full index answers (partial: a
// system that maps some match fields matches by them).
func (x *recIndex) settle(ctx context.Context, need int, partial bool) error {
	if x.full {
		return nil
	}
	if !partial && lazyShare != 0 && (lazyShare < 0 || need*lazyShare <= x.records) {
		return nil
	}
	return x.loadAll(ctx, x.records)
}

// size makes room for n more keys of kind (sizeIndexes).
func (x *recIndex) size(kind string, n int) {
	if m := x.ids[kind]; len(m) == 0 && n > 0 {
		x.ids[kind] = make(map[string]int64, n)
	}
}

// known returns the record holding key, and whether the index knows it
// without asking the store.
func (x *recIndex) known(kind, key string) (id int64, ok, known bool) {
	if id, ok := x.ids[kind][key]; ok {
		return id, true, true
	}
	if x.full || x.cfg.Kinds[kind] == nil {
		return 0, false, true
	}
	_, known = x.free[kind][key]
	return 0, false, known
}

// fetch asks the store about the keys of kind the index does not know,
// each once. keys may be many (fetchKeys gives every observation of a
// system to match, up to one in lazyShare of the records): a key asked
// twice is dropped by a set, not by a scan of those gathered, which would
// take time quadratic in their number.
func (x *recIndex) fetch(ctx context.Context, kind string, keys []string) error {
	var ask []string
	var asked map[string]struct{}
	for _, key := range keys {
		if _, _, known := x.known(kind, key); known {
			continue
		}
		if len(keys) > 1 {
			if asked == nil {
				asked = make(map[string]struct{}, len(keys))
			}
			if _, dup := asked[key]; dup {
				continue
			}
			asked[key] = struct{}{}
		}
		ask = append(ask, key)
	}
	for start := 0; start < len(ask); start += lookupChunk {
		chunk := ask[start:min(start+lookupChunk, len(ask))]
		found, err := x.store.RecordIDsByKey(ctx, kind, chunk)
		if err != nil {
			return fmt.Errorf("look up %d %s keys: %w", len(chunk), kind, err)
		}
		for _, key := range chunk {
			if id, ok := found[key]; ok {
				x.put(x.ids, kind, key, id)
			} else {
				if x.free[kind] == nil {
					x.free[kind] = map[string]struct{}{}
				}
				x.free[kind][key] = struct{}{}
			}
		}
	}
	return nil
}

// owner returns the record of kind holding key, asking the store when the
// index does not know.
func (x *recIndex) owner(ctx context.Context, kind, key string) (int64, bool, error) {
	id, ok, known := x.known(kind, key)
	if known {
		return id, ok, nil
	}
	if err := x.fetch(ctx, kind, []string{key}); err != nil {
		return 0, false, err
	}
	id, ok, _ = x.known(kind, key)
	return id, ok, nil
}

// put sets ids[kind][key] = id, making the kind's map.
func (x *recIndex) put(ids map[string]map[string]int64, kind, key string, id int64) {
	if ids[kind] == nil {
		ids[kind] = map[string]int64{}
	}
	ids[kind][key] = id
}

// set gives key to record id; the key is known (looked up first). One
// map operation: a first pass sets every record's key.
func (x *recIndex) set(kind, key string, id int64) {
	m := x.ids[kind]
	if m == nil {
		m = map[string]int64{}
		x.ids[kind] = m
	}
	n := len(m)
	m[key] = id
	if len(m) > n {
		x.records++
	}
	if !x.full {
		delete(x.free[kind], key)
	}
}

// add registers a record created in this pass, whose key correlation
// found free.
func (x *recIndex) add(kind, key string, id int64) { x.set(kind, key, id) }

// moved is memKeys.moved: record id's key went from oldKey to newKey.
func (x *recIndex) moved(ctx context.Context, kind, oldKey, newKey string, id int64) error {
	if err := x.fetch(ctx, kind, []string{oldKey, newKey}); err != nil {
		return err
	}
	if owner, ok, _ := x.known(kind, oldKey); ok && owner == id {
		delete(x.ids[kind], oldKey)
		x.records--
		if !x.full && x.cfg.Kinds[kind] != nil {
			if x.free[kind] == nil {
				x.free[kind] = map[string]struct{}{}
			}
			x.free[kind][oldKey] = struct{}{}
		}
	}
	x.set(kind, newKey, id)
	return nil
}
