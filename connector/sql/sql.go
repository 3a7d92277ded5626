// Package sql owns the `sql` connector: systems that are tables in a SQL
// database (CMDBs, inventories, identity stores) in SQLite, PostgreSQL or
// MySQL/MariaDB. It streams a table page by page (keyset pagination on the
// id column, or on the rowid of a SQLite rowid table, so a table of
// millions of rows is read in constant memory and no read holds a
// transaction open), reads only rows changed since a
// cursor when the table has an updated-at column, and applies conditional
// writes in one transaction per batch: each UPDATE names the old value of
// every column it changes (`WHERE col IS NOT DISTINCT FROM old`,
// MySQL `<=>`), so nothing a system changed is overwritten blind; a
// batch's rows are read with one SELECT and its writes changing the same
// columns go out as one UPDATE (batch.go).
//
// Settings: `dsn` (required; its scheme picks the database: sqlite:PATH,
// PATH relative to the config's directory; postgres://user:pass@host/db
// with any libpq URL parameter; mysql://user:pass@host:port/db),
// `table` (required; schema.table allowed), `updated_column` (optional:
// enables the change cursor), `notify` (PostgreSQL only: a LISTEN channel
// whose notifications name changed rows; see Watch and TriggerSQL),
// `pool_size` (connections, default 4) and `timeout` (connecting and each
// page or batch statement, default 30s; on PostgreSQL also the sessions'
// lock_timeout and statement_timeout, on MariaDB their
// max_statement_time, where nothing else sets one: pgTimeouts,
// mariaTimeout). The common
// `id` setting is required: the column holding each row's stable id; it
// should be unique and indexed (a primary key), as pages are read in its
// order (other than a SQLite rowid table's full reads, which mostly need
// not).
//
// Table and column names are checked against the table itself and always
// quoted; values are always bound, never spliced into SQL.
//
// Sets live in PostgreSQL text[] columns as arrays, in JSON columns
// (PostgreSQL json/jsonb, MySQL JSON, MariaDB JSON) as JSON arrays, and in
// text columns as their elements sorted and joined by the mapping's
// separator (default ","). An empty string, an empty array and NULL all
// mean "no value"; writing no value stores NULL. Timestamps are read and
// written in UTC (PostgreSQL sessions run with TimeZone UTC, MySQL ones
// with time_zone +00:00, DATETIME taken as UTC); booleans read as
// true/false whether the column is boolean, BIT(1) or TINYINT(1).
//
// The DSN's passwords never appear in a message: errors show the DSN
// with the user's password, and the value of a password, sslpassword,
// pass, passwd or pwd query parameter (whatever it holds: a ";", a "#"),
// replaced by xxxxx. On MySQL a password query parameter, URL-escaped,
// is the password when the URL's user has none; one whose escapes do
// not decode is refused, and so is a mysql:// DSN holding a "#" (Go's URL
// parser would take it as a fragment's start and drop what follows: it
// is to be percent-encoded as %23), and a postgres:// DSN holding one
// before its query (where pgx does not take it as a value's). On
// PostgreSQL the password is given as password= or in the URL: a pass,
// passwd or pwd parameter, or one spelled in capitals, is refused (pgx
// would send it to the server as a setting).
//
// SQLite databases are opened read-write without creating them, with a
// busy timeout of `timeout`, and batches run under BEGIN IMMEDIATE. The
// file's journal mode is left as its owner set it.
package sql

import (
	"context"
	"crypto/rand"
	stdsql "database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/nhisync/nhisync"
	_ "modernc.org/sqlite" // the SQLite driver
)

// Setting names of the sql connector.
const (
	SettingDSN           = "dsn"
	SettingTable         = "table"
	SettingUpdatedColumn = "updated_column"
	SettingNotify        = "notify"
	SettingPoolSize      = "pool_size"
	SettingTimeout       = "timeout"
)

// Defaults of the pool settings.
const (
	DefaultPoolSize = 4
	DefaultTimeout  = 30 * time.Second
	// pageSize is how many rows one page of a snapshot reads.
	pageSize = 2000
)

func init() {
	nhisync.RegisterDriver("sql", nhisync.Driver{
		Settings: []string{SettingDSN, SettingTable, SettingUpdatedColumn, SettingNotify, SettingPoolSize, SettingTimeout},
		Validate: Validate,
		Open:     Open,
	})
}

var (
	_ nhisync.Connector = (*Connector)(nil)
	_ nhisync.Checker   = (*Connector)(nil)
	_ nhisync.Scrubber  = (*Connector)(nil)
	_ nhisync.Changer   = (*CursorConnector)(nil)
)

// Connector reaches one table. It is safe for concurrent use.
type Connector struct {
	sys   *nhisync.System
	kind  *nhisync.Kind
	d     *dialect
	t     target
	pool  poolLimits
	db    *stdsql.DB
	table string // quoted
	// kinds, aligned with cols, say how each column's values are read and
	// bound.
	kinds []colKind
	// id, cols (aligned with sys.Fields) and updated are quoted column
	// names as the table spells them; updated is "" without a cursor.
	id      string
	idName  string
	cols    []string
	updated string
	// idAuto: the database makes ids of new rows; idMapped is the index of
	// the mapping of the id column (-1 if none).
	idAuto    bool
	idMapped  int
	selectAll string
	// rowid is how a SQLite rowid table's rowid is named where no column
	// takes the name; "" for other tables (WITHOUT ROWID, views, virtual
	// tables) and other databases. Full reads follow it (rowidScan):
	// selectRowid is selectAll reading it last.
	rowid       string
	selectRowid string
	// pgTypes (aligned with cols) and pgIDType are PostgreSQL's names of
	// the columns' types without their modifiers (pgColumnTypes), which a
	// batch update casts its values to; nil elsewhere. Open fails when
	// they cannot be read, as for the table's other schema reads.
	pgTypes  []string
	pgIDType string
	// rollbackOnTimeout: the MySQL/MariaDB server rolls a whole
	// transaction back on a lock wait timeout, not only the statement
	// (innodb_rollback_on_timeout; taken as so when it cannot be read).
	rollbackOnTimeout bool
	// Rand makes ids of created rows when the database does not
	// (crypto/rand by default).
	Rand io.Reader
	// Log is told what no write's outcome says: a batch read that failed,
	// its writes going one by one (slog.Default() by default), and, set
	// with SetLogger, what the MySQL driver says (driverLog). It never
	// gets the DSN or a password.
	Log *slog.Logger
	// version is the MySQL/MariaDB server's, as SELECT VERSION() gave it
	// at open ("" elsewhere); windows, whether the server has window
	// functions, which a batch read counts each id's rows with: told by
	// the version (MariaDB from 10.2, MySQL from 8.0) and by trying one
	// (readWindows), true on SQLite and PostgreSQL. Without them a batch's
	// writes read their rows one by one, which is logged once (oneByOne),
	// not for every batch.
	version  string
	windows  bool
	oneByOne sync.Once
}

// CursorConnector is a Connector whose table has an updated_column, so it
// can read only the rows changed since a cursor.
type CursorConnector struct{ *Connector }

// Validate checks a sql system's settings without reaching the database.
// It returns *nhisync.Error EINVALID naming the setting at fault; the
// message never holds the DSN.
func Validate(sys *nhisync.System, kind *nhisync.Kind) error {
	_, _, err := settings(sys)
	return err
}

func settings(sys *nhisync.System) (target, poolLimits, error) {
	bad := func(format string, args ...any) error {
		return nhisync.Errorf(nhisync.EINVALID, "system %s: %s", sys.Name, fmt.Sprintf(format, args...))
	}
	pool := poolLimits{size: sys.Settings.Int(SettingPoolSize, DefaultPoolSize), timeout: DefaultTimeout}
	if pool.size < 1 || pool.size > 100 {
		return target{}, pool, bad("pool_size %q: give a number of connections from 1 to 100 (default %d)", sys.Settings.String(SettingPoolSize), DefaultPoolSize)
	}
	if v := sys.Settings.String(SettingTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return target{}, pool, bad("timeout %q: give a duration such as 30s or 2m", v)
		}
		pool.timeout = d
	}
	t, err := parseDSN(sys.Settings.String(SettingDSN), sys.BaseDir, pool)
	if err != nil {
		return target{}, pool, bad("%v", err)
	}
	table := strings.TrimSpace(sys.Settings.String(SettingTable))
	if table == "" {
		return target{}, pool, bad("set table: the table holding the records")
	}
	for _, n := range append([]string{table, sys.ID, sys.Settings.String(SettingUpdatedColumn)}, mappedNames(sys)...) {
		if strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return target{}, pool, bad("the name %q holds a control character; name the table and columns as the database spells them", n)
		}
	}
	if strings.TrimSpace(sys.ID) == "" {
		return target{}, pool, bad("set id: the column holding each row's stable id (sql systems need one)")
	}
	if n := sys.Settings.String(SettingNotify); n != "" {
		if t.d != postgres {
			return target{}, pool, bad("notify (a LISTEN channel) works only with PostgreSQL; remove it")
		}
		if len(n) > 63 {
			return target{}, pool, bad("notify %q: a PostgreSQL channel name has at most 63 bytes", n)
		}
	}
	return t, pool, nil
}

func mappedNames(sys *nhisync.System) []string {
	out := make([]string, len(sys.Fields))
	for i, m := range sys.Fields {
		out[i] = m.Name
	}
	return out
}

// Open connects to the database and checks that the table and every
// column the system names exist. It returns a *CursorConnector when
// updated_column is set, and a *NotifyConnector or *NotifyCursorConnector
// (a nhisync.Watcher) when notify is set. Errors are *nhisync.Error: EINVALID for bad
// settings and missing tables or columns, EUNAVAIL when the database
// cannot be reached.
func Open(ctx context.Context, sys *nhisync.System, kind *nhisync.Kind) (nhisync.Connector, error) {
	c, err := New(ctx, sys, kind)
	if err != nil {
		return nil, err
	}
	notify := sys.Settings.String(SettingNotify) != ""
	switch {
	case c.updated != "" && notify:
		return &NotifyCursorConnector{&CursorConnector{c}}, nil
	case c.updated != "":
		return &CursorConnector{c}, nil
	case notify:
		return &NotifyConnector{c}, nil
	}
	return c, nil
}

var _ nhisync.LogSetter = (*Connector)(nil)

// SetLogger sets Log (nhisync.LogSetter), which the MySQL driver's own
// lines go to as well.
func (c *Connector) SetLogger(l *slog.Logger) {
	c.Log = l
	if c.t.mysqlLog != nil {
		c.t.mysqlLog.to.Store(l)
	}
}

// New is Open returning the concrete type.
func New(ctx context.Context, sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	t, pool, err := settings(sys)
	if err != nil {
		return nil, err
	}
	if t.mysqlLog != nil {
		t.mysqlLog.system = sys.Name
		t.mysqlLog.to.Store(slog.Default())
	}
	db, err := t.connect(ctx, sys, pool)
	if err != nil {
		return nil, err
	}
	c := &Connector{sys: sys, kind: kind, d: t.d, t: t, pool: pool, db: db, idMapped: -1, Rand: rand.Reader, Log: slog.Default()}
	if err := c.resolve(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

func (c *Connector) errorf(code, format string, args ...any) *nhisync.Error {
	return &nhisync.Error{Code: code, Message: fmt.Sprintf("system %s: ", c.sys.Name) + fmt.Sprintf(format, args...)}
}

// tableColumns returns the table's column names and database type names,
// or an error when the table is not there.
func (c *Connector) tableColumns(ctx context.Context) ([]string, []string, error) {
	table := c.sys.Settings.String(SettingTable)
	ctx, cancel := context.WithTimeout(ctx, c.pool.timeout)
	defer cancel()
	rows, err := c.db.QueryContext(ctx, "SELECT * FROM "+c.d.quoteTable(table)+" WHERE 1 = 0")
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, c.unavail(ctx.Err(), "cannot read table %s in time (timeout %s)", table, c.pool.timeout)
		}
		return nil, nil, &nhisync.Error{Code: nhisync.EINVALID, Message: fmt.Sprintf("system %s: cannot read table %s; check table: and that it exists (%s)", c.sys.Name, table, c.t.scrub(err)), Err: c.t.scrub(err)}
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, nil, c.unavail(err, "cannot read the columns of table %s", table)
	}
	names := make([]string, len(types))
	typeNames := make([]string, len(types))
	for i, ct := range types {
		names[i], typeNames[i] = ct.Name(), ct.DatabaseTypeName()
	}
	return names, typeNames, nil
}

// resolve finds every named column in the table, as the table spells it.
func (c *Connector) resolve(ctx context.Context) error {
	table := c.sys.Settings.String(SettingTable)
	have, typeNames, err := c.tableColumns(ctx)
	if err != nil {
		return err
	}
	var jsonCols []string
	if c.d.jsonColumns != nil {
		if jsonCols, err = c.d.jsonColumns(ctx, c.db, table); err != nil {
			return c.unavail(err, "cannot read the schema of table %s", table)
		}
	}
	find := func(name, what string) (string, error) {
		if slices.Contains(have, name) {
			return name, nil
		}
		var folded []string
		for _, h := range have {
			if strings.EqualFold(h, name) {
				folded = append(folded, h)
			}
		}
		if len(folded) == 1 {
			return folded[0], nil
		}
		return "", c.errorf(nhisync.EINVALID, "table %s has no column %q (%s); its columns are %s", table, name, what, strings.Join(have, ", "))
	}
	c.table = c.d.quoteTable(table)
	name, err := find(c.sys.ID, "the id setting")
	if err != nil {
		return err
	}
	c.idName, c.id = name, c.d.quote(name)
	var colNames []string
	for i, m := range c.sys.Fields {
		col, err := find(m.Name, "mapped from "+m.Field)
		if err != nil {
			return err
		}
		c.cols = append(c.cols, c.d.quote(col))
		colNames = append(colNames, col)
		k := c.d.kind(typeNames[slices.Index(have, col)])
		if slices.Contains(jsonCols, col) {
			k = kindJSON
		}
		if c.d == mysqlDialect && m.Type == nhisync.TypeBool && k == kindText && strings.Contains(strings.ToUpper(typeNames[slices.Index(have, col)]), "INT") {
			k = kindBool // MySQL's BOOLEAN is TINYINT(1)
		}
		c.kinds = append(c.kinds, k)
		if col == name {
			c.idMapped = i
		}
	}
	if u := c.sys.Settings.String(SettingUpdatedColumn); u != "" {
		col, err := find(u, "the updated_column setting")
		if err != nil {
			return err
		}
		c.updated = c.d.quote(col)
	}
	if c.sys.Provision {
		auto, err := c.d.idGenerated(ctx, c.db, table, name)
		if err != nil {
			return c.unavail(err, "cannot read the schema of table %s", table)
		}
		c.idAuto = auto
	}
	if c.d == sqlite {
		if c.rowid, err = sqliteRowid(ctx, c.db, table, have); err != nil {
			return c.unavail(err, "cannot read the schema of table %s", table)
		}
	}
	if c.d == postgres {
		if c.pgIDType, c.pgTypes, err = pgColumnTypes(ctx, c.db, c.table, name, colNames); err != nil {
			return c.unavail(err, "cannot read the column types of table %s", table)
		}
	}
	c.windows = true
	if c.d == mysqlDialect {
		var on int
		err := c.db.QueryRowContext(ctx, "SELECT @@innodb_rollback_on_timeout").Scan(&on)
		c.rollbackOnTimeout = err != nil || on != 0
		if err := c.readWindows(ctx); err != nil {
			return err
		}
	}
	sel := make([]string, 0, len(c.cols)+2)
	sel = append(sel, c.d.raw(c.id))
	for _, col := range c.cols {
		sel = append(sel, c.d.raw(col))
	}
	if c.updated != "" {
		sel = append(sel, c.d.text(c.updated))
	}
	c.selectAll = "SELECT " + strings.Join(sel, ", ") + " FROM " + c.table
	if c.rowid != "" {
		c.selectRowid = "SELECT " + strings.Join(append(sel, c.rowid), ", ") + " FROM " + c.table
	}
	return nil
}

// windowProbe is a window function, tried at open on a MySQL/MariaDB
// server whose version says it has them.
const windowProbe = "SELECT COUNT(*) OVER ()"

// readWindows reads the MySQL/MariaDB server's version and whether it has
// window functions: as its version says (windowFunctions), and as it
// answers windowProbe. A proxy may answer SELECT VERSION() itself
// (ProxySQL 3.0.4 gives its mysql-server_version, 8.0.11 by default) in
// front of a server without them (MySQL 5.7): every batch read would be
// refused as SQL it cannot parse, failing its writes as a bug, for good.
// The server refusing the probe (any error of its own) means none.
func (c *Connector) readWindows(ctx context.Context) error {
	if err := c.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&c.version); err != nil {
		return c.unavail(err, "cannot read the server's version")
	}
	if c.windows = windowFunctions(c.version); !c.windows {
		return nil
	}
	var n int
	if err := c.db.QueryRowContext(ctx, windowProbe).Scan(&n); err != nil {
		var me *mysql.MySQLError
		if !errors.As(err, &me) {
			return c.unavail(err, "cannot read whether the server has window functions")
		}
		c.windows = false
	}
	return nil
}

// windowFunctions reports whether a MySQL or MariaDB server whose
// SELECT VERSION() says version (8.0.36, 5.7.44-log,
// 10.11.6-MariaDB-0+deb12u1, or 5.5.5-10.3.39-MariaDB as MariaDB's
// handshake has it, which a proxy may pass on) has window functions:
// MariaDB from 10.2, MySQL from 8.0. A version it cannot read has none.
func windowFunctions(version string) bool {
	v := strings.TrimSpace(version)
	maria := strings.Contains(strings.ToLower(v), "mariadb")
	if maria {
		v = strings.TrimPrefix(v, "5.5.5-")
	}
	num := func() int {
		i := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(v[:i])
		if err != nil {
			return -1
		}
		v = strings.TrimPrefix(v[i:], ".")
		return n
	}
	major, minor := num(), num()
	if maria {
		return major > 10 || (major == 10 && minor >= 2)
	}
	return major >= 8
}

// Check pings the database and reads the table's columns. It returns
// *nhisync.Error EUNAVAIL when the database is unreachable and EINVALID
// when the table is gone.
func (c *Connector) Check(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, c.pool.timeout)
	defer cancel()
	if err := c.db.PingContext(pctx); err != nil {
		return c.unavail(err, "cannot reach the %s database %s: %v", c.d.name, c.t.redacted, c.t.scrub(err))
	}
	_, _, err := c.tableColumns(ctx)
	return err
}

// Close closes the database handle.
func (c *Connector) Close() error { return c.db.Close() }
