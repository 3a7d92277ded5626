package sql_test

import (
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// TestDSNHashRefused: a "#" in a mysql:// DSN is refused, saying to
// percent-encode it, without quoting the DSN or its password. Go's URL
// parser took it as a fragment's start and dropped what followed: the
// connector opened on MariaDB without the parameters after it (and with
// a password cut short), while the redacted DSN in messages listed them.
// On PostgreSQL a "#" before the query is refused alike: in the database
// name pgx connected to "name#x" while messages named "name"; in the
// password the DSN was refused as "not a postgres:// URL", saying nothing
// of why. (One in the query is a value's, as pgx reads it.)
func TestDSNHashRefused(t *testing.T) {
	pg := pgDatabase(t).dsn
	if i := strings.Index(pg, "?"); i >= 0 {
		pg = pg[:i] + "#x" + pg[i:]
	} else {
		pg += "#x"
	}
	for _, dsn := range []string{
		pg,
		"postgres://nhi:s3cr3t#w0rd@127.0.0.1:5432/db?sslmode=disable",
	} {
		sys := conntest.System("ids", "sql")
		sys.Fields = []*nhisync.Mapping{sys.Mapping("owner")}
		sys.Settings = nhisync.Settings{"dsn": dsn, "table": "accounts"}
		c, err := nsql.Open(t.Context(), sys, conntest.Kind())
		if err == nil {
			c.Close()
			t.Fatal("a postgres:// DSN with a # before its query opened")
		}
		wantCode(t, err, nhisync.EINVALID, "%23")
		for _, p := range []string{"s3cr3t", "w0rd"} {
			if strings.Contains(err.Error(), p) {
				t.Errorf("the error shows %q of the password: %v", p, err)
			}
		}
	}
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

// TestPostgresDSNSecretParamsRefused: a PostgreSQL DSN's query parameter
// spelling a password in a way pgx does not know (pwd, pass, passwd, a
// password in capitals) is refused, naming the fix, never the secret: pgx
// sent it to the server as a setting in the startup message, and the
// server refused the connection ("unrecognized configuration parameter",
// EUNAVAIL) with the secret already in its hands. A password given as
// password= (trust authentication here: any is taken) opens, and no
// session the server shows holds it.
func TestPostgresDSNSecretParamsRefused(t *testing.T) {
	s := pgDatabase(t)
	table := randName("accounts_")
	s.exec(t, "CREATE TABLE "+table+" ("+conntest.IDName+" text PRIMARY KEY, "+conntest.OwnerName+" text)")
	sep := "?"
	if strings.Contains(s.dsn, "?") {
		sep = "&"
	}
	open := func(q string) (nhisync.Connector, error) {
		sys := conntest.System("ids", "sql")
		sys.Fields = []*nhisync.Mapping{sys.Mapping("owner")}
		sys.Settings = nhisync.Settings{"dsn": s.dsn + sep + q, "table": table}
		return nsql.Open(t.Context(), sys, conntest.Kind())
	}
	for _, key := range []string{"pwd", "pass", "passwd", "PASSWORD", "Password", "SSLPASSWORD", "%20pwd"} {
		c, err := open(key + "=s3cr3t%3BPa55")
		if err == nil {
			c.Close()
			t.Errorf("%s: opened, want refused", key)
			continue
		}
		wantCode(t, err, nhisync.EINVALID, "password=")
		for _, p := range []string{"s3cr3t", "Pa55"} {
			if strings.Contains(err.Error(), p) {
				t.Errorf("%s: the error shows %q of the password: %v", key, p, err)
			}
		}
	}
	c, err := open("password=s3cr3t%3BPa55&application_name=nhisync_dsn_test")
	if err != nil {
		t.Fatalf("password=: %v", err)
	}
	defer c.Close()
	if err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nhisync_dsn_test'").Scan(&n); err != nil || n == 0 {
		t.Fatalf("the connector's sessions: %d, %v", n, err)
	}
	if err := s.db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%s3cr3t%'").Scan(&n); err != nil || n != 0 {
		t.Errorf("sessions showing the password: %d, %v", n, err)
	}
}
