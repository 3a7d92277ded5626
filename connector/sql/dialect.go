package sql

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nhisync/nhisync"
)

// dialect is what differs between the databases the connector reaches.
// SQLite is built in; PostgreSQL (jackc/pgx/v5 stdlib: placeholders $n,
// IS NOT DISTINCT FROM, SELECT … FOR UPDATE, information_schema for
// generated ids) and MySQL/MariaDB (go-sql-driver/mysql: `quoting`, <=>,
// LastInsertId) each need one more value of this type and a case in
// parseDSN.
type dialect struct {
	name string
	// driver is the database/sql driver name.
	driver string
	// param returns the i-th (1-based) placeholder.
	param func(i int) string
	// quote quotes an identifier.
	quote func(ident string) string
	// nullSafeEq compares two values with NULL equal to NULL.
	nullSafeEq string
	// raw wraps a selected column so its value arrives as stored, ready to
	// be bound back in a conditional UPDATE.
	raw func(col string) string
	// text casts a column to text (cursor values).
	text func(col string) string
	// lockRow is appended to the read of a row about to be updated.
	lockRow string
	// returning: INSERT … RETURNING is available.
	returning bool
	// idGenerated reports whether the database makes the id of a new row
	// when the insert leaves the id column out.
	idGenerated func(ctx context.Context, db *stdsql.DB, table, col string) (bool, error)
}

// sqlite is the SQLite dialect (modernc.org/sqlite, pure Go).
var sqlite = &dialect{
	name:   "SQLite",
	driver: "sqlite",
	param:  func(int) string { return "?" },
	quote: func(ident string) string {
		return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
	},
	nullSafeEq: "IS",
	// Unary + drops the column's declared type (so DATETIME text is not
	// turned into time.Time) and leaves the value as stored.
	raw:         func(col string) string { return "+" + col },
	text:        func(col string) string { return "CAST(" + col + " AS TEXT)" },
	returning:   true,
	idGenerated: sqliteIDGenerated,
}

// sqliteIDGenerated: an INTEGER PRIMARY KEY is the rowid, which SQLite
// assigns; a column with a DEFAULT gets its default.
func sqliteIDGenerated(ctx context.Context, db *stdsql.DB, table, col string) (bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT name, type, dflt_value, pk FROM pragma_table_info(?)", table)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	pks, auto := 0, false
	for rows.Next() {
		var name, typ string
		var dflt stdsql.NullString
		var pk int
		if err := rows.Scan(&name, &typ, &dflt, &pk); err != nil {
			return false, err
		}
		if pk > 0 {
			pks++
		}
		if strings.EqualFold(name, col) {
			auto = dflt.Valid || (pk > 0 && strings.EqualFold(strings.TrimSpace(typ), "INTEGER"))
			if dflt.Valid {
				return true, rows.Err()
			}
		}
	}
	return auto && pks == 1, rows.Err()
}

// quoteTable quotes a table name, each part of schema.table on its own.
func (d *dialect) quoteTable(table string) string {
	parts := strings.Split(table, ".")
	for i, p := range parts {
		parts[i] = d.quote(p)
	}
	return strings.Join(parts, ".")
}

// target is a parsed dsn: the dialect and the driver's own DSN. It never
// appears in messages: a DSN may hold a password.
type target struct {
	d   *dialect
	dsn string
	// file is the SQLite database file.
	file string
}

// parseDSN reads the dsn setting. Errors never quote the DSN.
func parseDSN(dsn, baseDir string) (target, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(dsn), ":")
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		p, query, _ := strings.Cut(rest, "?")
		p = strings.TrimPrefix(p, "//")
		if p == "" {
			return target{}, fmt.Errorf("dsn: give the database file as sqlite:PATH")
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		// mode=rw: never create a database that is not there.
		params := "mode=rw&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
		if query != "" {
			params += "&" + query
		}
		esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
		return target{d: sqlite, dsn: "file:" + esc + "?" + params, file: p}, nil
	case "postgres", "postgresql":
		return target{}, fmt.Errorf("dsn: PostgreSQL is not supported by this build yet; use sqlite:PATH")
	case "mysql", "mariadb":
		return target{}, fmt.Errorf("dsn: MySQL/MariaDB is not supported by this build yet; use sqlite:PATH")
	case "":
		return target{}, fmt.Errorf("set dsn: sqlite:PATH, postgres://… or mysql://user:pass@host:port/db")
	}
	return target{}, fmt.Errorf("dsn: unknown scheme %q; use sqlite:PATH, postgres://… or mysql://…", scheme)
}

// open connects and makes sure the database is there.
func (t target) open(ctx context.Context, sys *nhisync.System) (*stdsql.DB, error) {
	if t.file != "" {
		if _, err := os.Stat(t.file); err != nil {
			return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: the SQLite database file does not exist or cannot be read", sys.Name), Err: scrub(err, t.file)}
		}
	}
	db, err := stdsql.Open(t.d.driver, t.dsn)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot open the %s database", sys.Name, t.d.name), Err: scrub(err, t.dsn)}
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot reach the %s database", sys.Name, t.d.name), Err: scrub(err, t.dsn)}
	}
	return db, nil
}

// scrub keeps a secret out of an error's text.
func scrub(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), secret, "[dsn]"))
}
