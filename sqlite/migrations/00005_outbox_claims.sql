-- Outbox claims: a sender (a pass, or a drain of queued writes) holds the
-- writes it sends under a claim (token, holder, expiry), so two processes
-- sharing the store never send one write twice; a dead sender's claims
-- expire. Tokens come from the ids counter 'claim'.

-- +goose Up
ALTER TABLE outbox ADD COLUMN claim_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN claim_holder TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claim_until TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_claimed ON outbox (claim_until) WHERE claim_token <> 0;
INSERT INTO ids (name, next) VALUES ('claim', 1);

-- +goose Down
DELETE FROM ids WHERE name = 'claim';
DROP INDEX outbox_claimed;
ALTER TABLE outbox DROP COLUMN claim_until;
ALTER TABLE outbox DROP COLUMN claim_holder;
ALTER TABLE outbox DROP COLUMN claim_token;
