package sql

// The MySQL/MariaDB error numbers the connector tells apart, and one
// table of what those answering a statement or a COMMIT say of its
// transaction (mysqlErrors): mysqlCommitCut and endsTx read it, so a
// kill or a shutdown is judged alike by both.
const (
	erServerShutdown        = 1053 // ER_SERVER_SHUTDOWN
	erParseError            = 1064 // ER_PARSE_ERROR
	erNoSuchThread          = 1094 // ER_NO_SUCH_THREAD
	erErrorDuringCommit     = 1180 // ER_ERROR_DURING_COMMIT
	erUnknownSystemVariable = 1193 // ER_UNKNOWN_SYSTEM_VARIABLE
	erLockWaitTimeout       = 1205 // ER_LOCK_WAIT_TIMEOUT
	erLockTableFull         = 1206 // ER_LOCK_TABLE_FULL
	erLockDeadlock          = 1213 // ER_LOCK_DEADLOCK
	erQueryInterrupted      = 1317 // ER_QUERY_INTERRUPTED: KILL QUERY
	erConnectionKilled      = 1927 // ER_CONNECTION_KILLED: MariaDB's KILL CONNECTION
	erStatementTimeout      = 1969 // ER_STATEMENT_TIMEOUT: MariaDB's max_statement_time
	erQueryTimeout          = 3024 // ER_QUERY_TIMEOUT: MySQL's max_execution_time
	erSessionWasKilled      = 3169 // ER_SESSION_WAS_KILLED: MySQL's KILL CONNECTION
)

// mysqlErrors says, for each error number that says either, whether the
// error rolled its statement's whole transaction back (endsTx: the
// server ended the session, or InnoDB undid the transaction), and
// whether, answering a COMMIT, it says the COMMIT was cut short, which
// may have been after its commit point (cutsCommit, mysqlCommitCut).
// A lock wait timeout ends the transaction only on a server running
// with innodb_rollback_on_timeout (endsTx reads that).
var mysqlErrors = map[uint16]struct{ endsTx, cutsCommit bool }{
	erServerShutdown:    {endsTx: true, cutsCommit: true},
	erConnectionKilled:  {endsTx: true, cutsCommit: true},
	erSessionWasKilled:  {endsTx: true, cutsCommit: true},
	erLockDeadlock:      {endsTx: true},
	erLockTableFull:     {endsTx: true},
	erQueryInterrupted:  {cutsCommit: true},
	erErrorDuringCommit: {cutsCommit: true},
}
