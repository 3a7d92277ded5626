-- The version of the links' heads (Store.LinksVersion): a value every
-- commit that changes a link's record, status or hash replaces by a new
-- one drawn at random, so an engine that keeps the heads a pass read
-- (nhisync serve) reads them again only once another value is stored.

-- +goose Up
INSERT INTO meta (key, value) VALUES ('links_version', floor(random() * 9007199254740991)::bigint::text)
	ON CONFLICT (key) DO NOTHING;

-- +goose Down
DELETE FROM meta WHERE key = 'links_version';
