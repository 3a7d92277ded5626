package benchestate

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"

	"github.com/nhisync/nhisync"
)

// ReadFloor reads every system of cfg once through conns, decoding each
// record and canonicalising and hashing its values as a pass's change
// detection does, and nothing else: the read floor SPEC §8 bounds a quiet
// pass by. The systems are read side by side, as a pass reads them: a
// floor read one after the other would flatter the ratios on a machine of
// several cores. cmd/nhisync-bench and the engine's quiet-pass benchmark
// both measure it here, so their floors are the same work.
func ReadFloor(ctx context.Context, cfg *nhisync.Config, conns map[string]nhisync.Connector) error {
	errs := make([]error, len(cfg.SystemNames))
	var wg sync.WaitGroup
	for i, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		wg.Go(func() {
			buf := make([]byte, 0, 256)
			var sink byte
			errs[i] = conns[name].Snapshot(ctx, func(obs nhisync.Observation) error {
				buf = buf[:0]
				for j, v := range obs.Values {
					if j < len(sys.Fields) {
						buf = sys.Fields[j].Type.Canonical(v).AppendBinary(buf)
					}
				}
				sum := sha256.Sum256(buf)
				sink ^= sum[0]
				return nil
			})
			_ = sink
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
