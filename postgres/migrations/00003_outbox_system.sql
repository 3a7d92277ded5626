-- A claim takes one system's due ready writes in order (ClaimOutbox:
-- WHERE system = … AND status = … AND next_at <= … ORDER BY next_at, id).
-- By outbox_due (next_at, id) it stepped over every queued write of the
-- other systems before the ones it took, reading each row to see its
-- system: a first pass queues the systems' writes interleaved, and while
-- one system's writes are claimed 2,000 at a time the others' wait in
-- the queue, so each claim stepped over more of them than the one
-- before (on a queue of 100,000 writes of three systems, a claim of the
-- last system's first 2,000 filtered out 66,667 rows). Indexed by system
-- and status first, then next_at and id, a claim reads only the writes
-- it may take, in the order it takes them (no sort), and stops at its
-- LIMIT. It replaces outbox_due: every other reader of the outbox
-- (OutboxWrites: a plan's planned writes, a system's held ones, store
-- copy, the API) reads all it selects (none asks for a limit), so a scan
-- and a sort serve it, and a write queued keeps costing one index's
-- upkeep beside outbox_record's.

-- +goose Up
CREATE INDEX outbox_system ON outbox (system, status, next_at, id);
DROP INDEX outbox_due;

-- +goose Down
CREATE INDEX outbox_due ON outbox (next_at, id);
DROP INDEX outbox_system;
