package sql

import (
	"context"
	stdsql "database/sql"
)

// SetDB replaces c's pool with db, closing c's: a test reaches the real
// server through a driver of its own (one that rewrites a statement).
func SetDB(c *Connector, db *stdsql.DB) {
	c.db.Close()
	c.db = db
}

// SetWindowFunctions sets whether c takes its server to have window
// functions, as if its version had said so.
func SetWindowFunctions(c *Connector, on bool) { c.windows = on }

// WindowFunctions reports whether c took its server to have window
// functions when it opened.
func WindowFunctions(c *Connector) bool { return c.windows }

// ReadWindows reads again, as at open, whether c's server has window
// functions (through c's pool as SetDB left it).
func ReadWindows(ctx context.Context, c *Connector) error { return c.readWindows(ctx) }

// DB is c's pool.
func DB(c *Connector) *stdsql.DB { return c.db }

// PGTypes is what c casts a batch update's id and values to on
// PostgreSQL: the id column's type and each mapped column's (aligned
// with the system's mappings).
func PGTypes(c *Connector) (string, []string) { return c.pgIDType, c.pgTypes }
