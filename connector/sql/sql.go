// Package sql owns the `sql` connector: systems that are tables in a SQL
// database (CMDBs, inventories, identity stores). It streams a table,
// reads only rows changed since a cursor when the table has an updated-at
// column, and applies conditional writes in one transaction per batch:
// each UPDATE names the old value of every column it changes
// (`WHERE col IS old`), so nothing a system changed is overwritten blind.
//
// Settings: `dsn` (required; its scheme picks the database: sqlite:PATH,
// PATH relative to the config's directory; postgres:// and mysql:// are
// recognised but not built in yet), `table` (required), `updated_column`
// (optional: enables the change cursor) and `notify` (PostgreSQL only).
// The common `id` setting is required: the column holding each row's
// stable id.
//
// Sets live in text columns as their elements sorted and joined by the
// mapping's separator (default ","). An empty string and NULL both mean
// "no value"; writing no value stores NULL.
//
// SQLite databases are opened read-write without creating them, with a
// 10 s busy timeout and in WAL mode (a persistent setting of the file, so
// nhisync's reads never block the system's own writers), and batches run
// under BEGIN IMMEDIATE.
package sql

import (
	"context"
	"crypto/rand"
	stdsql "database/sql"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
	_ "modernc.org/sqlite" // the SQLite driver
)

// Setting names of the sql connector.
const (
	SettingDSN           = "dsn"
	SettingTable         = "table"
	SettingUpdatedColumn = "updated_column"
	SettingNotify        = "notify"
)

func init() {
	nhisync.RegisterDriver("sql", nhisync.Driver{
		Settings: []string{SettingDSN, SettingTable, SettingUpdatedColumn, SettingNotify},
		Validate: Validate,
		Open:     Open,
	})
}

var (
	_ nhisync.Connector = (*Connector)(nil)
	_ nhisync.Checker   = (*Connector)(nil)
	_ nhisync.Changer   = (*CursorConnector)(nil)
)

// Connector reaches one table. It is safe for concurrent use.
type Connector struct {
	sys   *nhisync.System
	kind  *nhisync.Kind
	d     *dialect
	db    *stdsql.DB
	table string // quoted
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
	// Rand makes ids of created rows when the database does not
	// (crypto/rand by default).
	Rand io.Reader
}

// CursorConnector is a Connector whose table has an updated_column, so it
// can read only the rows changed since a cursor.
type CursorConnector struct{ *Connector }

// Validate checks a sql system's settings without reaching the database.
// It returns *nhisync.Error EINVALID naming the setting at fault; the
// message never holds the DSN.
func Validate(sys *nhisync.System, kind *nhisync.Kind) error {
	_, err := settings(sys)
	return err
}

func settings(sys *nhisync.System) (target, error) {
	bad := func(format string, args ...any) error {
		return nhisync.Errorf(nhisync.EINVALID, "system %s: %s", sys.Name, fmt.Sprintf(format, args...))
	}
	t, err := parseDSN(sys.Settings.String(SettingDSN), sys.BaseDir)
	if err != nil {
		return target{}, bad("%v", err)
	}
	if strings.TrimSpace(sys.Settings.String(SettingTable)) == "" {
		return target{}, bad("set table: the table holding the records")
	}
	if strings.TrimSpace(sys.ID) == "" {
		return target{}, bad("set id: the column holding each row's stable id (sql systems need one)")
	}
	if sys.Settings.String(SettingNotify) != "" {
		return target{}, bad("notify (a LISTEN channel) works only with PostgreSQL; remove it")
	}
	return t, nil
}

// Open connects to the database and checks that the table and every
// column the system names exist. It returns a *CursorConnector when
// updated_column is set. Errors are *nhisync.Error: EINVALID for bad
// settings and missing tables or columns, EUNAVAIL when the database
// cannot be reached.
func Open(ctx context.Context, sys *nhisync.System, kind *nhisync.Kind) (nhisync.Connector, error) {
	c, err := New(ctx, sys, kind)
	if err != nil {
		return nil, err
	}
	if c.updated != "" {
		return &CursorConnector{c}, nil
	}
	return c, nil
}

// New is Open returning the concrete type.
func New(ctx context.Context, sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	t, err := settings(sys)
	if err != nil {
		return nil, err
	}
	db, err := t.open(ctx, sys)
	if err != nil {
		return nil, err
	}
	c := &Connector{sys: sys, kind: kind, d: t.d, db: db, idMapped: -1, Rand: rand.Reader}
	if err := c.resolve(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

func (c *Connector) errorf(code, format string, args ...any) *nhisync.Error {
	return &nhisync.Error{Code: code, Message: fmt.Sprintf("system %s: ", c.sys.Name) + fmt.Sprintf(format, args...)}
}

// tableColumns returns the table's column names, or an error when the
// table is not there.
func (c *Connector) tableColumns(ctx context.Context) ([]string, error) {
	table := c.sys.Settings.String(SettingTable)
	rows, err := c.db.QueryContext(ctx, "SELECT * FROM "+c.d.quoteTable(table)+" WHERE 1 = 0")
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: fmt.Sprintf("system %s: cannot read table %s; check table: and that it exists", c.sys.Name, table), Err: err}
	}
	defer rows.Close()
	return rows.Columns()
}

// resolve finds every named column in the table, as the table spells it.
func (c *Connector) resolve(ctx context.Context) error {
	table := c.sys.Settings.String(SettingTable)
	have, err := c.tableColumns(ctx)
	if err != nil {
		return err
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
	for i, m := range c.sys.Fields {
		col, err := find(m.Name, "mapped from "+m.Field)
		if err != nil {
			return err
		}
		c.cols = append(c.cols, c.d.quote(col))
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
	if c.sys.Provision && c.idMapped < 0 {
		auto, err := c.d.idGenerated(ctx, c.db, table, name)
		if err != nil {
			return c.errorf(nhisync.EUNAVAIL, "cannot read the schema of table %s", table)
		}
		c.idAuto = auto
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
	return nil
}

// Check pings the database and reads the table's columns. It returns
// *nhisync.Error EUNAVAIL when the database is unreachable and EINVALID
// when the table is gone.
func (c *Connector) Check(ctx context.Context) error {
	if err := c.db.PingContext(ctx); err != nil {
		return c.errorf(nhisync.EUNAVAIL, "cannot reach the %s database", c.d.name)
	}
	_, err := c.tableColumns(ctx)
	return err
}

// Close closes the database handle.
func (c *Connector) Close() error { return c.db.Close() }
