-- Outbox claims: a sender (a pass, or any replica draining queued writes)
-- holds the writes it sends under a claim (token, holder, expiry), taken
-- with SELECT … FOR UPDATE SKIP LOCKED, so replicas drain in parallel and
-- no write is sent by two of them; a dead sender's claims expire. Tokens
-- come from the ids counter 'claim'.

-- +goose Up
ALTER TABLE outbox ADD COLUMN claim_token bigint NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN claim_holder text NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claim_until text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX outbox_claimed ON outbox (claim_until) WHERE claim_token <> 0;
INSERT INTO ids (name, next) VALUES ('claim', 1);

-- +goose Down
DELETE FROM ids WHERE name = 'claim';
DROP INDEX outbox_claimed;
ALTER TABLE outbox DROP COLUMN claim_until;
ALTER TABLE outbox DROP COLUMN claim_holder;
ALTER TABLE outbox DROP COLUMN claim_token;
