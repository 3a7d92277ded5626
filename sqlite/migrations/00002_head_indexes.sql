-- Covering indexes for the heads a pass scans first (ScanRecordHeads,
-- ScanLinkHeads): with them a quiet pass reads a few narrow index pages
-- instead of every wide row with its state blob.

-- +goose Up
CREATE INDEX records_heads ON records (id, kind, match_key);
CREATE INDEX links_heads ON links (system, ext_id, record_id, status, hash);

-- +goose Down
DROP INDEX links_heads;
DROP INDEX records_heads;
