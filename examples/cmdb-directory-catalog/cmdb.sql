-- The CMDB of the example: one table of service accounts (psql -f cmdb.sql).
CREATE TABLE service_accounts (
  sys_id     text PRIMARY KEY,
  name       text NOT NULL,
  platform   text NOT NULL,
  owned_by   text,
  app        text,
  status     text,
  cost_center text,                         -- not mapped: nhisync leaves it alone
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Keep updated_at current, so nhisync reads only changed rows.
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON service_accounts FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

INSERT INTO service_accounts (sys_id, name, platform, owned_by, app, status, cost_center) VALUES
  ('CI0001', 'svc-billing', 'aws',    'alice', 'billing',  'active', 'cc-100'),
  ('CI0002', 'svc-ci',      'github', 'bob',   'delivery', 'active', 'cc-200'),
  ('CI0003', 'svc-etl',     'gcp',    'carol', 'analytics','active', 'cc-300');
