package sql_test

import (
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// TestMySQLDSNHashRefused: a "#" in a mysql:// DSN is refused, saying to
// percent-encode it, without quoting the DSN or its password. Go's URL
// parser took it as a fragment's start and dropped what followed: the
// connector opened on MariaDB without the parameters after it (and with
// a password cut short), while the redacted DSN in messages listed them.
func TestMySQLDSNHashRefused(t *testing.T) {
	s := mysqlDatabase(t)
	table := randName("accounts_")
	s.exec(t, "CREATE TABLE "+table+" ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	for _, q := range []string{
		"?readTimeout=5s#&writeTimeout=5s",
		"?charset=utf8mb4&pwd=s3cr3t#w0rd",
	} {
		sys := conntest.System("ids", "sql")
		sys.Fields = []*nhisync.Mapping{sys.Mapping("owner")}
		sys.Settings = nhisync.Settings{"dsn": s.dsn + q, "table": table}
		c, err := nsql.Open(t.Context(), sys, conntest.Kind())
		if err == nil {
			c.Close()
			t.Errorf("dsn …%s: opened, want refused (the parameters after the # were dropped)", strings.SplitN(q, "pwd=", 2)[0])
			continue
		}
		wantCode(t, err, nhisync.EINVALID, "%23")
		for _, p := range []string{"s3cr3t", "w0rd"} {
			if strings.Contains(err.Error(), p) {
				t.Errorf("the error shows %q of the password: %v", p, err)
			}
		}
	}
}
