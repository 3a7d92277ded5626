package sql

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/nhisync/nhisync"
)

var (
	_ nhisync.Watcher = (*NotifyConnector)(nil)
	_ nhisync.Watcher = (*NotifyCursorConnector)(nil)
	_ nhisync.Changer = (*NotifyCursorConnector)(nil)
)

// NotifyConnector is a Connector on PostgreSQL with a notify channel: it
// is a nhisync.Watcher.
type NotifyConnector struct{ *Connector }

// NotifyCursorConnector is a CursorConnector with a notify channel.
type NotifyCursorConnector struct{ *CursorConnector }

// Watch LISTENs on the system's notify channel on a connection of its own
// and calls changed with the id each notification carries (the trigger
// TriggerSQL prints sends the row's id; an empty payload calls
// changed(nil)). It calls changed(nil) once LISTEN is in place. It returns
// nil when ctx ends and *nhisync.Error EUNAVAIL when the connection fails
// or is lost.
func (c *NotifyConnector) Watch(ctx context.Context, changed func(ids []string)) error {
	return c.watch(ctx, changed)
}

// Watch is NotifyConnector.Watch.
func (c *NotifyCursorConnector) Watch(ctx context.Context, changed func(ids []string)) error {
	return c.watch(ctx, changed)
}

func (c *Connector) watch(ctx context.Context, changed func(ids []string)) error {
	channel := c.sys.Settings.String(SettingNotify)
	conn, err := pgx.ConnectConfig(ctx, c.t.pg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.unavail(err, "cannot connect to LISTEN on %s at %s", channel, c.t.redacted)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.quote(channel)); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.unavail(err, "LISTEN %s failed", channel)
	}
	changed(nil)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return c.unavail(err, "the LISTEN connection for %s was lost", channel)
		}
		if id := strings.TrimSpace(n.Payload); id != "" {
			changed([]string{id})
		} else {
			changed(nil)
		}
	}
}

// TriggerSQL returns the SQL an operator runs on a PostgreSQL system with
// `notify` to make the table announce its changes: a trigger function
// sending each inserted, updated or deleted row's id on the channel, and
// the trigger. Names are quoted; nothing is run. It returns
// *nhisync.Error EINVALID when the system is not a sql system on
// PostgreSQL with notify set.
func TriggerSQL(sys *nhisync.System) (string, error) {
	if sys.Connector != "sql" {
		return "", nhisync.Errorf(nhisync.EINVALID, "system %s uses the %s connector; triggers are for sql systems on PostgreSQL", sys.Name, sys.Connector)
	}
	t, _, err := settings(sys)
	if err != nil {
		return "", err
	}
	channel := sys.Settings.String(SettingNotify)
	if t.d != postgres || channel == "" {
		return "", nhisync.Errorf(nhisync.EINVALID, "system %s: set notify: CHANNEL (on a postgres:// dsn) to have changes pushed", sys.Name)
	}
	table := strings.TrimSpace(sys.Settings.String(SettingTable))
	schema, name := splitTable(table)
	fn := "nhisync_notify_" + name
	if len(fn) > 63 {
		fn = fn[:63]
	}
	qfn := postgres.quote(fn)
	if schema != "" {
		qfn = postgres.quote(schema) + "." + qfn
	}
	id := postgres.quote(strings.TrimSpace(sys.ID))
	lit := "'" + strings.ReplaceAll(channel, "'", "''") + "'"
	return fmt.Sprintf(`-- nhisync: make table %[1]s announce its changes on channel %[2]s (system %[3]s).
-- Run once as the table's owner; nhisync LISTENs and reads the rows named.
CREATE OR REPLACE FUNCTION %[4]s() RETURNS trigger LANGUAGE plpgsql AS $nhisync$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify(%[5]s, OLD.%[6]s::text);
  ELSE
    PERFORM pg_notify(%[5]s, NEW.%[6]s::text);
  END IF;
  RETURN NULL;
END
$nhisync$;
DROP TRIGGER IF EXISTS nhisync_notify ON %[7]s;
CREATE TRIGGER nhisync_notify AFTER INSERT OR UPDATE OR DELETE ON %[7]s
  FOR EACH ROW EXECUTE FUNCTION %[4]s();
`, table, channel, sys.Name, qfn, lit, id, postgres.quoteTable(table)), nil
}
