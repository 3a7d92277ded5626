// Package postgres is the PostgreSQL store: nhisync.Store on one
// PostgreSQL database (jackc/pgx/v5, a native connection pool), for an
// organisation that runs nhisync on several hosts or already operates,
// backs up and replicates PostgreSQL. It holds what the SQLite store
// holds, with the same encoding of records and links and the same audit
// leaf bytes, chain and checkpoints, so `audit verify` and `audit proof`
// behave alike on both and `store copy` moves a workspace between them.
//
// Its schema comes from versioned goose migrations embedded in the
// binary, applied under a PostgreSQL advisory lock when the store opens
// (several replicas may start at once).
//
// Concurrency: reads run on the pool; each Commit is one transaction that
// first takes a transaction-level advisory lock, so commits (and the audit
// log's append) are serialized across every process sharing the database,
// and checks its batch's lease fence inside that transaction. Leases are
// rows (holder, expiry, epoch) changed by single conditional statements;
// queued writes are claimed with SELECT … FOR UPDATE SKIP LOCKED (claim.go)
// so replicas drain them in parallel; nothing is coordinated outside
// PostgreSQL. A serialization failure or
// deadlock is retried; a connection lost mid-commit rolls the whole
// transaction back (PostgreSQL never keeps half of one) and Commit fails
// with EUNAVAIL.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/nhisync/nhisync"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ nhisync.Store = (*Store)(nil)

// Store is the PostgreSQL implementation of nhisync.Store.
type Store struct {
	pool *pgxpool.Pool
	// name is what messages call the store: host and database, never the
	// password.
	name string

	notaryMu sync.Mutex
	notary   nhisync.Notary

	// bulkConn holds the bulk window's lock while this process has the
	// window open (bulk.go).
	bulkMu   sync.Mutex
	bulkConn *pgx.Conn

	closeOnce sync.Once
}

// commitLock is the key of the advisory lock every Commit holds for its
// transaction (the ASCII of "nhisync" folded into an int64).
const commitLock int64 = 0x6e6869_73796e63

// IsURL reports whether a store URL names a PostgreSQL store.
func IsURL(storeURL string) bool {
	return strings.HasPrefix(storeURL, "postgres://") || strings.HasPrefix(storeURL, "postgresql://")
}

// Open connects to the PostgreSQL database named by dsn (a postgres://
// URL or a libpq key=value string) and brings its schema up to date. It
// returns EINVALID for a DSN that does not parse, EUNAVAIL when the server
// cannot be reached or refuses the login, and EINTERNAL for other
// failures. Messages name the host and database, never the password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	const op = "postgres.Open"
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN: keep it out.
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "the PostgreSQL store URL does not parse; write it as postgres://USER[:PASSWORD]@HOST:5432/DATABASE?sslmode=disable"}
	}
	s := &Store{name: fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)}
	if cfg.MaxConns < 4 {
		cfg.MaxConns = 4
	}
	// A process stopped inside a transaction (SIGSTOP, a stalled VM)
	// would hold the commit lock, and every replica's commits with it:
	// the server ends such a session after a while, rolling it back.
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "60000"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, s.openError(op, err)
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, s.openError(op, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, s.openError(op, err)
	}
	// A bulk window a process left open (it died inside it) closes now.
	if err := s.repairWindow(ctx); err != nil {
		s.pool.Close()
		return nil, internal(op, err)
	}
	return s, nil
}

// OpenURL opens the store named by a postgres:// (or postgresql://) URL.
// It returns EINVALID for another scheme, and what Open returns otherwise.
func OpenURL(ctx context.Context, storeURL string) (nhisync.Store, error) {
	if !IsURL(storeURL) {
		return nil, nhisync.Errorf(nhisync.EINVALID, "the PostgreSQL store's URL is postgres://USER@HOST:5432/DATABASE")
	}
	return Open(ctx, storeURL)
}

// migrate applies the embedded migrations the database lacks, holding a
// session advisory lock so replicas starting together migrate once.
func (s *Store) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// openError explains a failure to open the store.
func (s *Store) openError(op string, err error) error {
	if e := unavailable(op, err); e != nil {
		e.Message = fmt.Sprintf("cannot reach the PostgreSQL store %s: %s; check the server is running, the URL's host, port, user and database, and its pg_hba.conf", s.name, pgMessage(err))
		return e
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot open the PostgreSQL store %s: %s", s.name, pgMessage(err)), Err: err}
}

// Close releases the connection pool. Closing again does nothing. A bulk
// window still open stays open (its mark is in the schema) and the next
// Open closes it.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.bulkMu.Lock()
		if s.bulkConn != nil {
			s.bulkConn.Close(context.Background())
			s.bulkConn = nil
		}
		s.bulkMu.Unlock()
		s.pool.Close()
	})
	return nil
}

// Ping checks the server answers: what a replica's /readyz asks.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return internal("postgres.Ping", err)
	}
	return nil
}

// ExecRaw runs one SQL statement behind the store's back (with ? or $n
// placeholders). It is for tests that must show the schema refuses
// tampering (storetest uses it on the audit log) and for repair tools; the
// engine never calls it. Errors are EINTERNAL.
func (s *Store) ExecRaw(ctx context.Context, query string, args ...any) error {
	if _, err := s.pool.Exec(ctx, rebind(query), args...); err != nil {
		return internal("postgres.ExecRaw", err)
	}
	return nil
}

// querier is what reads need: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// rebind turns ? placeholders into $1, $2…; the store's SQL holds no
// literal question mark.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// internal wraps a driver failure: EUNAVAIL when the server is out of
// reach, EINTERNAL otherwise.
func internal(op string, err error) error {
	if err == nil {
		return nil
	}
	var ne *nhisync.Error
	if errors.As(err, &ne) {
		if ne.Op == "" {
			ne.Op = op
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the store operation was canceled", Err: err}
	}
	if e := unavailable(op, err); e != nil {
		return e
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the PostgreSQL store failed: " + pgMessage(err) + "; nothing of this step was written", Err: err}
}

// unavailable is EUNAVAIL for a failure to reach the server or a
// connection lost (a transaction it held is rolled back whole), nil for
// other failures.
func unavailable(op string, err error) *nhisync.Error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin shutdown, crash shutdown, cannot connect now
			pe.Code == "53300": // too many connections
			return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: "the PostgreSQL store is unreachable (" + pe.Message + "): nothing of this step was written; the next run resumes", Err: err}
		case pe.Code == "25P03": // idle_in_transaction_session_timeout
			return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: "the PostgreSQL store ended this process's session: it held a transaction open past idle_in_transaction_session_timeout (was the process stopped or stalled?); nothing of this step was written, and the next run resumes", Err: err}
		case pe.Code == "28P01", pe.Code == "28000", pe.Code == "3D000":
			return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: "the PostgreSQL store refused the login (" + pe.Message + ")", Err: err}
		}
		return nil
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnClosed(err) {
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: "the PostgreSQL store is unreachable (connection failed or lost): nothing of this step was written; the next run resumes", Err: err}
	}
	return nil
}

// isConnClosed reports a connection that broke under a statement.
func isConnClosed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "failed to deallocate cached statement")
}

// pgMessage is a driver error's message without anything that could hold
// the DSN.
func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return "connection failed"
	}
	return err.Error()
}

// pgCode returns the SQLSTATE of a server error ("" for others).
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable reports a serialization failure or deadlock: the transaction
// was rolled back whole and may simply run again.
func retryable(err error) bool {
	c := pgCode(err)
	return c == "40001" || c == "40P01"
}

// notFound returns ENOTFOUND for a missing item.
func notFound(op, what string, id any) error {
	return &nhisync.Error{Code: nhisync.ENOTFOUND, Op: op, Message: fmt.Sprintf("no %s %v", what, id)}
}
