package sql_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// TestNotifyWatch: with notify set, the trigger TriggerSQL prints makes
// PostgreSQL announce each changed row's id, and Watch hands it on.
func TestNotifyWatch(t *testing.T) {
	s := pgDatabase(t)
	s.exec(t, `CREATE TABLE "Odd ""Accounts""" (id text PRIMARY KEY, name text)`)
	sys := &nhisync.System{Name: "cmdb", Connector: "sql", Kind: "service_account", ID: "id", Direction: nhisync.DirBoth,
		Settings: nhisync.Settings{"dsn": s.dsn, "table": `Odd "Accounts"`, "notify": "nhi changes"},
		Fields:   []*nhisync.Mapping{{Field: "name", Name: "name", Type: nhisync.TypeString, Direction: nhisync.DirBoth}}}
	ddl, err := nsql.TriggerSQL(sys)
	if err != nil {
		t.Fatal(err)
	}
	s.exec(t, ddl)
	s.exec(t, ddl) // an operator may run it twice
	c, err := nsql.Open(t.Context(), sys, typedKind())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, ok := c.(nhisync.Watcher)
	if !ok {
		t.Fatalf("%T is not a Watcher", c)
	}
	ids := make(chan []string, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx, func(x []string) { ids <- x }) }()
	next := func() []string {
		select {
		case x := <-ids:
			return x
		case err := <-done:
			t.Fatalf("Watch ended: %v", err)
		}
		return nil
	}
	if first := next(); first != nil {
		t.Fatalf("first call %v, want nil (subscribed: read changes)", first)
	}
	s.exec(t, `INSERT INTO "Odd ""Accounts""" VALUES ('svc-1', 'a')`)
	if got := next(); !slices.Equal(got, []string{"svc-1"}) {
		t.Errorf("after an insert: %v", got)
	}
	s.exec(t, `UPDATE "Odd ""Accounts""" SET name = 'b' WHERE id = 'svc-1'`)
	s.exec(t, `DELETE FROM "Odd ""Accounts""" WHERE id = 'svc-1'`)
	if a, b := next(), next(); !slices.Equal(a, []string{"svc-1"}) || !slices.Equal(b, []string{"svc-1"}) {
		t.Errorf("after an update and a delete: %v %v", a, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch after cancel: %v", err)
	}
}

func TestTriggerSQLRefusesOtherSystems(t *testing.T) {
	for _, st := range []nhisync.Settings{
		{"dsn": "sqlite:x.db", "table": "t"},
		{"dsn": "postgres://u@h/db", "table": "t"},
	} {
		sys := &nhisync.System{Name: "cmdb", Connector: "sql", ID: "id", Settings: st}
		_, err := nsql.TriggerSQL(sys)
		if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), "notify") {
			t.Errorf("%v: %v", st, err)
		}
	}
}
