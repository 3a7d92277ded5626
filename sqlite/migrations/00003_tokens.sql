-- API and console tokens (SPEC §7). Only the SHA-256 hash of a token's
-- secret is kept; the secret is shown once, when it is created.

-- +goose Up
CREATE TABLE tokens (
	name       TEXT PRIMARY KEY,
	role       TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	created    TEXT NOT NULL,
	created_by TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE tokens;
