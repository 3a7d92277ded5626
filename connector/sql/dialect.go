package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/nhisync/nhisync"
)

// dialect is what differs between the databases the connector reaches:
// SQLite (modernc.org/sqlite), PostgreSQL (jackc/pgx/v5 through its
// database/sql interface) and MySQL/MariaDB (go-sql-driver/mysql).
type dialect struct {
	name string
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
	// when the insert leaves the id column out, one the connector can
	// read back.
	idGenerated func(ctx context.Context, db *stdsql.DB, table, col string) (bool, error)
	// kind tells what a column holds from its database type name, as
	// database/sql's ColumnType.DatabaseTypeName reports it.
	kind func(typeName string) colKind
	// jsonColumns lists columns that hold JSON although their type name
	// does not say so (MariaDB's JSON is LONGTEXT with a json_valid check);
	// nil when the type name always tells.
	jsonColumns func(ctx context.Context, db *stdsql.DB, table string) ([]string, error)
}

// colKind is what a column holds, which decides how values are read from
// it and bound to it.
type colKind int

const (
	kindText  colKind = iota // text, numbers: bound and read as text
	kindTime                 // timestamp, datetime: time.Time, in UTC
	kindBool                 // boolean (PostgreSQL) or TINYINT(1)/BIT(1) (MySQL)
	kindArray                // PostgreSQL text[]: a set is the array's elements
	kindJSON                 // json, jsonb: a set is a JSON array
)

func quoteDouble(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

// sqlite is the SQLite dialect (modernc.org/sqlite, pure Go). Every
// column is read as stored (text), whatever its declared type.
var sqlite = &dialect{
	name:       "SQLite",
	param:      func(int) string { return "?" },
	quote:      quoteDouble,
	nullSafeEq: "IS",
	// Unary + drops the column's declared type (so DATETIME text is not
	// turned into time.Time) and leaves the value as stored.
	raw:         func(col string) string { return "+" + col },
	text:        func(col string) string { return "CAST(" + col + " AS TEXT)" },
	returning:   true,
	idGenerated: sqliteIDGenerated,
	kind:        func(string) colKind { return kindText },
}

// postgres is the PostgreSQL dialect. Sessions run in UTC, so timestamps
// without a zone read and write as UTC and text casts of timestamptz
// carry +00.
var postgres = &dialect{
	name:        "PostgreSQL",
	param:       func(i int) string { return fmt.Sprintf("$%d", i) },
	quote:       quoteDouble,
	nullSafeEq:  "IS NOT DISTINCT FROM",
	raw:         func(col string) string { return col },
	text:        func(col string) string { return col + "::text" },
	lockRow:     " FOR UPDATE",
	returning:   true,
	idGenerated: pgIDGenerated,
	kind: func(t string) colKind {
		switch strings.ToUpper(t) {
		case "TIMESTAMP", "TIMESTAMPTZ", "DATE":
			return kindTime
		case "BOOL":
			return kindBool
		case "_TEXT", "_VARCHAR", "_BPCHAR", "_CITEXT", "_NAME":
			return kindArray
		case "JSON", "JSONB":
			return kindJSON
		}
		return kindText
	},
}

// mysqlDialect is the MySQL/MariaDB dialect. Sessions run with time_zone
// +00:00 and DATETIME values are taken as UTC.
var mysqlDialect = &dialect{
	name:        "MySQL/MariaDB",
	param:       func(int) string { return "?" },
	quote:       func(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "``") + "`" },
	nullSafeEq:  "<=>",
	raw:         func(col string) string { return col },
	text:        func(col string) string { return "CAST(" + col + " AS CHAR)" },
	lockRow:     " FOR UPDATE",
	idGenerated: mysqlIDGenerated,
	kind: func(t string) colKind {
		switch strings.ToUpper(t) {
		case "DATETIME", "TIMESTAMP", "DATE":
			return kindTime
		case "BIT":
			return kindBool
		case "JSON":
			return kindJSON
		}
		return kindText
	},
	jsonColumns: mysqlJSONColumns,
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

// sqliteRowid returns the name of the rowid of a SQLite table that has
// one (a plain table, not WITHOUT ROWID, a view or a virtual table),
// among _rowid_, rowid and oid the first no column in cols takes; "" if
// it has none or every name is a column's. A name found in several
// schemas (temp and main) must be a rowid table in each.
func sqliteRowid(ctx context.Context, db *stdsql.DB, table string, cols []string) (string, error) {
	schema, name := splitTable(table)
	rows, err := db.QueryContext(ctx, `SELECT type, wr FROM pragma_table_list
		WHERE name = ? COLLATE NOCASE AND (? = '' OR schema = ? COLLATE NOCASE)`, name, schema, schema)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var typ string
		var wr int
		if err := rows.Scan(&typ, &wr); err != nil {
			return "", err
		}
		if typ != "table" || wr != 0 {
			return "", rows.Err()
		}
		n++
	}
	if err := rows.Err(); err != nil || n == 0 {
		return "", err
	}
	for _, alias := range []string{"_rowid_", "rowid", "oid"} {
		if !slices.ContainsFunc(cols, func(c string) bool { return strings.EqualFold(c, alias) }) {
			return alias, nil
		}
	}
	return "", nil
}

// splitTable returns schema (or "") and table of a possibly qualified name.
func splitTable(table string) (schema, name string) {
	if s, n, ok := strings.Cut(table, "."); ok {
		return s, n
	}
	return "", table
}

// pgIDGenerated: an identity column, or one with a default (serial,
// gen_random_uuid()).
func pgIDGenerated(ctx context.Context, db *stdsql.DB, table, col string) (bool, error) {
	schema, name := splitTable(table)
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = COALESCE(NULLIF($1, ''), current_schema()) AND table_name = $2 AND column_name = $3
		AND (column_default IS NOT NULL OR is_identity = 'YES')`, schema, name, col).Scan(&n)
	return n > 0, err
}

// mysqlIDGenerated: an AUTO_INCREMENT column, the only id of a new row
// MySQL tells back (LastInsertId; it has no RETURNING). A column's
// DEFAULT (UUID()) does not count: LastInsertId would give 0, and the
// create would name its record "0". Nor could column_default tell: MariaDB
// gives the string 'NULL' for a nullable column without one.
func mysqlIDGenerated(ctx context.Context, db *stdsql.DB, table, col string) (bool, error) {
	schema, name := splitTable(table)
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = COALESCE(NULLIF(?, ''), DATABASE()) AND table_name = ? AND column_name = ?
		AND extra LIKE '%auto_increment%'`, schema, name, col).Scan(&n)
	return n > 0, err
}

// mysqlJSONColumns finds MariaDB JSON columns: LONGTEXT guarded by a
// json_valid(`col`) check constraint.
func mysqlJSONColumns(ctx context.Context, db *stdsql.DB, table string) ([]string, error) {
	schema, name := splitTable(table)
	rows, err := db.QueryContext(ctx, `SELECT check_clause FROM information_schema.check_constraints
		WHERE constraint_schema = COALESCE(NULLIF(?, ''), DATABASE()) AND table_name = ?`, schema, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var clause string
		if err := rows.Scan(&clause); err != nil {
			return nil, err
		}
		c := strings.TrimSpace(clause)
		if rest, ok := strings.CutPrefix(strings.ToLower(c), "json_valid("); ok && strings.HasSuffix(rest, ")") {
			col := strings.TrimSuffix(c[len("json_valid("):], ")")
			out = append(out, strings.Trim(col, "`"))
		}
	}
	return out, rows.Err()
}

// quoteTable quotes a table name, each part of schema.table on its own.
func (d *dialect) quoteTable(table string) string {
	parts := strings.Split(table, ".")
	for i, p := range parts {
		parts[i] = d.quote(p)
	}
	return strings.Join(parts, ".")
}

// target is a parsed dsn: the dialect and how to open it. The DSN itself
// never appears in messages: it may hold a password; redacted is the form
// that may be shown.
type target struct {
	d *dialect
	// open makes the database handle (no connection yet).
	open func() (*stdsql.DB, error)
	// file is the SQLite database file.
	file string
	// redacted is the DSN with its passwords (the user's, and every query
	// parameter secretParams names) replaced by xxxxx.
	redacted string
	// secrets are the passwords, scrubbed from every error.
	secrets []string
	// pg is the PostgreSQL connection config (LISTEN needs a connection of
	// its own, outside the pool).
	pg *pgx.ConnConfig
	// mysqlLog is the MySQL driver's logger (nil elsewhere).
	mysqlLog *driverLog
	// killSession ends a MySQL/MariaDB session (KILL CONNECTION id) from
	// a connection of its own, outside the pool, whose size may leave
	// none to spare (nil elsewhere): how Apply cuts a COMMIT that got no
	// answer within the timeout setting (commitBounded).
	killSession func(ctx context.Context, id int64) error
}

// driverLog is what the MySQL driver logs to (it says so when it finds a
// connection broken, an idle one closed by the server, a packet out of
// order): the connector's Log, as warnings naming the system, scrubbed,
// instead of the driver's own logger, which writes to the process's
// stderr past the logger serve hands the connector (nhisync.LogSetter).
type driverLog struct {
	to     atomic.Pointer[slog.Logger]
	system string
	scrub  func(string) string
}

// Print implements mysql.Logger.
func (l *driverLog) Print(v ...any) {
	if lg := l.to.Load(); lg != nil {
		lg.Warn("the MySQL driver: "+l.scrub(strings.TrimSpace(fmt.Sprint(v...))), "system", l.system)
	}
}

// poolLimits are the connection pool's settings.
type poolLimits struct {
	size    int
	timeout time.Duration
}

// parseDSN reads the dsn setting. Errors never quote the DSN.
func parseDSN(dsn, baseDir string, pool poolLimits) (target, error) {
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
		// mode=rw: never create a database that is not there. The journal
		// mode is the file owner's choice and is left as it is.
		params := fmt.Sprintf("mode=rw&_pragma=busy_timeout(%d)&_txlock=immediate", pool.timeout.Milliseconds())
		if query != "" {
			params += "&" + query
		}
		esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
		driverDSN := "file:" + esc + "?" + params
		return target{d: sqlite, file: p, redacted: "sqlite:" + p,
			open: func() (*stdsql.DB, error) { return stdsql.Open("sqlite", driverDSN) }}, nil
	case "postgres", "postgresql":
		// pgx reads a "#" in the query as part of a value (as libpq does),
		// but one before the query (in the password, the host or the
		// database name) would not parse here, or be shown cut off in
		// messages: refused, never quoting the DSN.
		if before, _, _ := strings.Cut(dsn, "?"); strings.Contains(before, "#") {
			return target{}, fmt.Errorf(`dsn: a "#" before the "?" of a postgres:// URL would be taken as the start of a fragment; percent-encode each "#" as %%23 (in a password too)`)
		}
		u, err := url.Parse(dsn)
		if err != nil {
			return target{}, fmt.Errorf("dsn: not a postgres://user:password@host:port/database URL")
		}
		secrets := dsnSecrets(dsn, u)
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return target{}, fmt.Errorf("dsn: %s", scrubText(err.Error(), append(secrets, dsn)...))
		}
		// The password pgx settled on (the URL's, a password parameter's,
		// or PGPASSWORD's).
		secrets = append(secrets, cfg.Password)
		// pgx sends a query parameter it does not know (pwd, PASSWORD) to
		// the server as a setting, in the startup message: the secret
		// would reach the server, which refuses the connection for it.
		// Refused here, naming the key only. The key is judged as a
		// redacted one is (secretKey): "pwd+" is no key pgx knows either,
		// and it would send its value too.
		for k := range cfg.RuntimeParams {
			if secretKey(k) {
				return target{}, fmt.Errorf("dsn: PostgreSQL does not know the query parameter %q and would send it to the server as a setting; give the password as password=… (the client key's as sslpassword=…), in lower case, or in the URL: postgres://user:password@host/db", strings.TrimSpace(k))
			}
		}
		if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > pool.timeout {
			cfg.ConnectTimeout = pool.timeout
		}
		cfg.RuntimeParams["timezone"] = "UTC"
		if _, ok := cfg.RuntimeParams["application_name"]; !ok {
			cfg.RuntimeParams["application_name"] = "nhisync"
		}
		lockTimeout := fmt.Sprintf("%dms", max(1, pool.timeout.Milliseconds()))
		return target{d: postgres, redacted: redact(dsn, u), secrets: secrets, pg: cfg,
			open: func() (*stdsql.DB, error) {
				return stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(ctx context.Context, conn *pgx.Conn) error {
					return pgTimeouts(ctx, conn, lockTimeout)
				})), nil
			}}, nil
	case "mysql", "mariadb":
		// Go's URL parser takes a "#" as the start of a fragment and drops
		// it with all that follows: a parameter after it would be lost
		// silently (and a password holding one cut short). Refused, never
		// quoting the DSN.
		if strings.Contains(dsn, "#") {
			return target{}, fmt.Errorf(`dsn: a "#" in a mysql:// URL starts a fragment, which would drop what follows it; percent-encode each "#" as %%23 (in a password too)`)
		}
		u, err := url.Parse(dsn)
		if err != nil || u.Host == "" {
			return target{}, fmt.Errorf("dsn: not a mysql://user:password@host:port/database URL")
		}
		db := strings.TrimPrefix(u.Path, "/")
		if db == "" {
			return target{}, fmt.Errorf("dsn: name the database: mysql://user:password@host:port/DATABASE")
		}
		host := u.Host
		if u.Port() == "" {
			host += ":3306"
		}
		secrets := dsnSecrets(dsn, u)
		// A password given as a query parameter is the password (unless
		// the URL has one); no secret parameter reaches the driver, which
		// would send it to the server as a SET statement.
		pw, hasPW := u.User.Password()
		var params []string
		for _, kv := range strings.Split(u.RawQuery, "&") {
			rawK, rawV, _ := strings.Cut(kv, "=")
			if !secretKey(rawK) {
				params = append(params, kv)
				continue
			}
			v, err := url.QueryUnescape(rawV)
			if err != nil {
				// Never quote the value: it is a secret.
				return target{}, fmt.Errorf("dsn: a password query parameter's value is not URL-escaped; escape %% in it as %%25")
			}
			if !hasPW && !strings.EqualFold(queryKey(rawK), "sslpassword") {
				pw, hasPW = v, true
			}
		}
		cfg, err := mysql.ParseDSN("tcp(" + host + ")/" + db + "?" + strings.Join(params, "&"))
		if err != nil {
			return target{}, fmt.Errorf("dsn: %s", scrubText(err.Error(), append(secrets, dsn)...))
		}
		cfg.User, cfg.Passwd = u.User.Username(), pw
		cfg.ParseTime, cfg.Loc = true, time.UTC
		// Built once, clipped: appended to in the closure, secrets'
		// spare room would be written by every line the driver logs,
		// from its connections' goroutines at once.
		logSecrets := append(slices.Clip(secrets), dsn)
		dlog := &driverLog{scrub: func(s string) string { return scrubText(s, logSecrets...) }}
		cfg.Logger = dlog
		if cfg.Timeout == 0 {
			cfg.Timeout = pool.timeout
		}
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["time_zone"] = "'+00:00'"
		return target{d: mysqlDialect, redacted: redact(dsn, u), secrets: secrets, mysqlLog: dlog,
			killSession: func(ctx context.Context, id int64) error { return killSession(ctx, cfg, id) },
			open: func() (*stdsql.DB, error) {
				conn, err := mysql.NewConnector(cfg)
				if err != nil {
					return nil, err
				}
				if !hasParam(cfg.Params, "max_statement_time") {
					conn = mariaTimeout{Connector: conn, seconds: fmt.Sprintf("%.3f", max(0.001, pool.timeout.Seconds()))}
				}
				return stdsql.OpenDB(conn), nil
			}}, nil
	case "":
		return target{}, fmt.Errorf("set dsn: sqlite:PATH, postgres://… or mysql://user:pass@host:port/db")
	}
	return target{}, fmt.Errorf("dsn: unknown scheme %q; use sqlite:PATH, postgres://… or mysql://…", scheme)
}

// pgTimeouts sets a new PostgreSQL session's lock_timeout and
// statement_timeout to timeout (the timeout setting) when nothing else
// set them (0, PostgreSQL's default: wait for ever). A write's SELECT …
// FOR UPDATE of a row another transaction holds would otherwise wait as
// long as that transaction lasts, and a statement the server is slow to
// run (a trigger, a table scan) as long as it runs, holding up the
// Apply, where the timeout setting bounds each statement. The lock not
// had in time is lock_not_available (locked), a statement cut short
// query_canceled (timedOut): that write fails, saying so, its statement
// undone under its savepoint (alone), and stays queued; the others go
// on. A value set for the role, the database or in the DSN (options=-c
// lock_timeout=…) is left as it is. statement_timeout bounds a snapshot's
// page too, as the timeout setting's context already did; a COMMIT it
// reaches waiting for a synchronous replica is committed all the same.
func pgTimeouts(ctx context.Context, conn *pgx.Conn, timeout string) error {
	_, err := conn.Exec(ctx, "SELECT set_config(name, $1, false) FROM (VALUES ('lock_timeout'), ('statement_timeout')) AS s(name) WHERE current_setting(name) = '0'", timeout)
	return err
}

// mariaTimeout sets each new MariaDB session's max_statement_time to
// seconds (the timeout setting) when nothing else set it (0, MariaDB's
// default: none), as pgTimeouts does on PostgreSQL: a write waiting for
// a row another transaction holds would otherwise wait for InnoDB's
// innodb_lock_wait_timeout (50 s by default), and a statement the server
// is slow to run as long as it runs. A statement past it fails with
// ER_STATEMENT_TIMEOUT (timedOut), undone alone, the transaction going
// on: that write fails, saying so, and stays queued. It does not cut a
// COMMIT. A value set globally, for the user, or in the DSN
// (max_statement_time=…, which skips this) is left as it is. MySQL has
// no such variable (its max_execution_time bounds SELECTs only): there
// the SET fails as an unknown variable, and the session is kept as it is.
type mariaTimeout struct {
	driver.Connector
	seconds string
}

// Connect implements driver.Connector.
func (m mariaTimeout) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := m.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		return conn, nil
	}
	_, err = ex.ExecContext(ctx, "SET @@SESSION.max_statement_time = IF(@@SESSION.max_statement_time = 0, "+m.seconds+", @@SESSION.max_statement_time)", nil)
	var me *mysql.MySQLError
	if err != nil && !(errors.As(err, &me) && me.Number == erUnknownSystemVariable) { // MySQL
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// killSession ends the MySQL/MariaDB session id (KILL CONNECTION) from a
// new connection made with cfg, closed once done. The server rolls the
// session's transaction back unless its COMMIT is past its commit
// point, and ends the statement it runs: a COMMIT waiting for a lock, a
// backup stage or a replica's ACK fails, and the connection closes. A
// session already gone (ER_NO_SUCH_THREAD 1094) is no failure.
func killSession(ctx context.Context, cfg *mysql.Config, id int64) error {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	dc, err := conn.Connect(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	ex, ok := dc.(driver.ExecerContext)
	if !ok {
		return fmt.Errorf("the MySQL driver's connection runs no statement")
	}
	_, err = ex.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10), nil)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == erNoSuchThread {
		return nil
	}
	return err
}

// hasParam reports whether the DSN's params (sent to the server as
// session settings) set key.
func hasParam(params map[string]string, key string) bool {
	for k := range params {
		if strings.EqualFold(strings.TrimSpace(k), key) {
			return true
		}
	}
	return false
}

// connect opens the pool and makes sure the database is there.
func (t target) connect(ctx context.Context, sys *nhisync.System, pool poolLimits) (*stdsql.DB, error) {
	if t.file != "" {
		if _, err := os.Stat(t.file); err != nil {
			return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: the SQLite database file %s does not exist or cannot be read", sys.Name, t.file), Err: t.scrub(err)}
		}
	}
	db, err := t.open()
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot open the %s database %s: %v", sys.Name, t.d.name, t.redacted, t.scrub(err)), Err: t.scrub(err)}
	}
	db.SetMaxOpenConns(pool.size)
	db.SetMaxIdleConns(min(2, pool.size))
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, pool.timeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot reach the %s database %s: %v", sys.Name, t.d.name, t.redacted, t.scrub(err)), Err: t.scrub(err)}
	}
	return db, nil
}

// scrub keeps the password out of an error's text.
func (t target) scrub(err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	if c := scrubText(s, t.secrets...); c != s {
		return fmt.Errorf("%s", c)
	}
	return err
}

// Scrub implements nhisync.Scrubber: s without the password.
func (c *Connector) Scrub(s string) string { return scrubText(s, c.t.secrets...) }

// secretParams are the DSN query parameters that hold a secret: libpq's
// password and sslpassword (the client key's), and the other spellings
// of a password a DSN may carry.
var secretParams = []string{"password", "sslpassword", "pass", "passwd", "pwd"}

func secretParam(name string) bool {
	return slices.ContainsFunc(secretParams, func(p string) bool { return strings.EqualFold(p, name) })
}

// queryKey is a DSN query parameter's name decoded (as is when it does
// not decode), without the spaces around it.
func queryKey(raw string) string {
	if k, err := url.PathUnescape(raw); err == nil {
		raw = k
	}
	return strings.TrimSpace(raw)
}

// secretKey reports whether a DSN query parameter's raw name is one of
// secretParams, decoded either way ("+" as a space or as itself).
func secretKey(raw string) bool {
	k, err := url.QueryUnescape(raw)
	return secretParam(queryKey(raw)) || (err == nil && secretParam(strings.TrimSpace(k)))
}

// dsnQuery returns the raw text of a DSN after its first "?", fragment
// and all: the PostgreSQL driver parses the query as libpq does, where a
// "#" is part of a value, and a value Go's URL parser skips (holding a
// ";" or a "%" not followed by two hex digits) is still a value to
// redact.
func dsnQuery(dsn string) string {
	_, q, _ := strings.Cut(dsn, "?")
	return q
}

// dsnSecrets returns the secrets of a DSN URL: its user's password and
// the value of every query parameter secretParams names, as written and
// decoded either way, and with and without what follows a "#" in it.
func dsnSecrets(dsn string, u *url.URL) []string {
	var out []string
	if pw, ok := u.User.Password(); ok {
		out = append(out, pw)
	}
	for _, kv := range strings.Split(dsnQuery(dsn), "&") {
		rawK, rawV, _ := strings.Cut(kv, "=")
		if !secretKey(rawK) {
			continue
		}
		before, _, _ := strings.Cut(rawV, "#")
		for _, v := range []string{rawV, before} {
			out = append(out, v)
			if d, err := url.QueryUnescape(v); err == nil {
				out = append(out, d)
			}
			if d, err := url.PathUnescape(v); err == nil {
				out = append(out, d)
			}
		}
	}
	return out
}

// redact returns u as text with its user's password and the values of
// the query parameters secretParams names replaced by xxxxx; its query
// is dsn's as written, up to its end (a fragment is taken as part of the
// query, as the PostgreSQL driver takes it).
func redact(dsn string, u *url.URL) string {
	r := *u
	r.Fragment, r.RawFragment = "", ""
	if q := dsnQuery(dsn); q != "" {
		kvs := strings.Split(q, "&")
		for i, kv := range kvs {
			if rawK, _, _ := strings.Cut(kv, "="); secretKey(rawK) {
				kvs[i] = rawK + "=xxxxx"
			}
		}
		r.RawQuery, r.ForceQuery = strings.Join(kvs, "&"), false
	}
	return r.Redacted()
}

// scrubText replaces every occurrence of each secret in s (the password,
// as is and URL-escaped, and the whole DSN), the longest first: a secret
// holding another (a query value and the part of it before a "#") is
// replaced whole.
func scrubText(s string, secrets ...string) string {
	var all []string
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		all = append(all, sec, url.QueryEscape(sec), url.PathEscape(sec))
	}
	slices.SortStableFunc(all, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range all {
		s = strings.ReplaceAll(s, sec, "xxxxx")
	}
	return s
}
