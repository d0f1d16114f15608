package engine

import "errors"

// ErrNotReady means no bundle has been loaded yet.
var ErrNotReady = errors.New("no bundle loaded")

// InputError is a request the client got wrong. The HTTP layer maps it to a
// 4xx naming Field.
type InputError struct {
	Field    string
	Reason   string
	notFound bool
}

func (e *InputError) Error() string { return e.Field + ": " + e.Reason }

// ClientError reports the field and reason for the client.
func (e *InputError) ClientError() (field, reason string) { return e.Field, e.Reason }

// NotFound reports whether the request named something that does not exist.
func (e *InputError) NotFound() bool { return e.notFound }

func badInput(field, reason string) error { return &InputError{Field: field, Reason: reason} }

func notFound(field, reason string) error {
	return &InputError{Field: field, Reason: reason, notFound: true}
}
