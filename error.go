package nhisync

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. The CLI maps them to exit codes (EINVALID → 2, others → 1),
// the HTTP layer to statuses, in one table each.
const (
	ECONFLICT  = "conflict"  // the state changed under the caller (CAS, lease, already decided)
	EINTERNAL  = "internal"  // a bug or an unexpected failure
	EINVALID   = "invalid"   // bad input or configuration
	ENOTFOUND  = "not_found" // no such record, conflict, approval, …
	EFORBIDDEN = "forbidden" // not allowed (separation of duties, roles)
	EUNAVAIL   = "unavailable"
)

// Error is the project's error: Code for programs, Message safe to show a
// person (it never holds a secret), Err the cause for logs.
type Error struct {
	Code    string
	Op      string
	Message string
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Message != "" {
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		if e.Message != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	if b.Len() == 0 {
		return e.Code
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of err.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return err.Error()
}
