package sql

import (
	stdsql "database/sql"
	"path/filepath"
	"testing"

	"github.com/nhisync/nhisync"
)

// TestPoolLimits: pool_size bounds the connections and timeout the busy
// wait; the defaults apply when they are not set.
func TestPoolLimits(t *testing.T) {
	dir := t.TempDir()
	db, err := stdsql.Open("sqlite", "file:"+filepath.Join(dir, "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, tc := range []struct {
		settings nhisync.Settings
		size     int
	}{
		{nhisync.Settings{}, DefaultPoolSize},
		{nhisync.Settings{"pool_size": 2, "timeout": "3s"}, 2},
	} {
		sys := &nhisync.System{Name: "inv", Connector: "sql", ID: "id", BaseDir: dir,
			Settings: nhisync.Settings{"dsn": "sqlite:inv.db", "table": "accounts"},
			Fields:   []*nhisync.Mapping{{Field: "name", Name: "name", Type: nhisync.TypeString, Direction: nhisync.DirBoth}}}
		for k, v := range tc.settings {
			sys.Settings[k] = v
		}
		c, err := New(t.Context(), sys, &nhisync.Kind{Name: "service_account"})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.db.Stats().MaxOpenConnections; got != tc.size {
			t.Errorf("%v: max open connections %d, want %d", tc.settings, got, tc.size)
		}
		c.Close()
	}
}
