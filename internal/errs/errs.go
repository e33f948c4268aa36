// Package errs holds the error kinds domain packages return so the server
// can map them to HTTP statuses without the domain knowing about HTTP.
package errs

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error for the API layer.
type Kind int

// Kinds map to 422, 404, 409, 412, 403 and 429.
const (
	KindInvalid Kind = iota + 1
	KindNotFound
	KindConflict
	KindPrecondition
	KindForbidden
	KindTooMany
	KindUnauthorized
	KindNoSpace // 507: the storage is full
	KindBackend // 500 with the backend's own message (qemu-img, btrfs, ...)
)

// Field is one invalid input field.
type Field struct {
	Field   string
	Message string
}

// Error is a classified domain error.
type Error struct {
	Kind   Kind
	Msg    string
	Fields []Field
}

func (e *Error) Error() string {
	var parts []string
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Message)
	}
	if len(parts) == 0 {
		return e.Msg
	}
	return e.Msg + ": " + strings.Join(parts, "; ")
}

// Invalid reports one bad input field.
func Invalid(field, format string, args ...any) error {
	return &Error{Kind: KindInvalid, Msg: "validation failed", Fields: []Field{{field, fmt.Sprintf(format, args...)}}}
}

// NotFound says what is missing.
func NotFound(format string, args ...any) error {
	return &Error{Kind: KindNotFound, Msg: fmt.Sprintf(format, args...)}
}

// Conflict says why the request clashes with the current state.
func Conflict(format string, args ...any) error {
	return &Error{Kind: KindConflict, Msg: fmt.Sprintf(format, args...)}
}

// Forbidden refuses an action regardless of input validity.
func Forbidden(format string, args ...any) error {
	return &Error{Kind: KindForbidden, Msg: fmt.Sprintf(format, args...)}
}

// Unauthorized refuses a credential.
func Unauthorized(format string, args ...any) error {
	return &Error{Kind: KindUnauthorized, Msg: fmt.Sprintf(format, args...)}
}

// TooMany refuses because of rate limiting.
func TooMany(format string, args ...any) error {
	return &Error{Kind: KindTooMany, Msg: fmt.Sprintf(format, args...)}
}

// NoSpace reports a full storage.
func NoSpace(format string, args ...any) error {
	return &Error{Kind: KindNoSpace, Msg: fmt.Sprintf(format, args...)}
}

// Backend wraps a failure of an external tool or system whose message the
// caller should see (it names the tool and what it said).
func Backend(err error) error {
	return &Error{Kind: KindBackend, Msg: err.Error()}
}

// KindOf returns the kind of err, or 0 for unclassified errors.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
