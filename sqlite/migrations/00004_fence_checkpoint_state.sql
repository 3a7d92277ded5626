-- Checkpoints signed inside the commit that appends entries keep the
-- compact Merkle range of their tree (state) and the hash of their last
-- entry (last_hash), so the next commit hashes only its own entries and
-- can tell the log's head is exactly what the latest checkpoint covers.
-- Leases carry an epoch, their fencing token: it grows whenever the lease
-- passes to a holder that did not hold it just before, and a released
-- lease keeps its row (holder '') so the epoch never goes back.

-- +goose Up
ALTER TABLE checkpoints ADD COLUMN state BLOB;
ALTER TABLE checkpoints ADD COLUMN last_hash TEXT;
ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE leases DROP COLUMN epoch;
ALTER TABLE checkpoints DROP COLUMN last_hash;
ALTER TABLE checkpoints DROP COLUMN state;
