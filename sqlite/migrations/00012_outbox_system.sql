-- A claim takes one system's due ready writes in order (ClaimOutbox). By
-- outbox_due (next_at, id) it stepped over every queued write of the
-- other systems before the ones it took, reading each row to see its
-- system: a first pass queues the systems' writes interleaved, and while
-- one system's writes are claimed 2,000 at a time the others' wait in
-- the queue, so each claim stepped over more of them than the one
-- before. Indexed by system and status first, a claim reads only the
-- writes it may take (an entry ends with the rowid, the id: next_at, id
-- order). The index replaces outbox_due, so queueing a write costs about
-- what it did: a query of every system's writes by status alone (a plan's
-- planned writes) reads the table and sorts what it keeps, where it read
-- every entry of outbox_due before.

-- +goose Up
CREATE INDEX outbox_system ON outbox (system, status, next_at);
DROP INDEX outbox_due;

-- +goose Down
CREATE INDEX outbox_due ON outbox (next_at, id);
DROP INDEX outbox_system;
