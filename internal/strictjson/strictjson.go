// Package strictjson decodes client JSON strictly (one object, no unknown
// fields, no trailing data) and turns encoding/json's errors into errors
// that name the offending field, so every decoder of outside input reports
// problems the same way.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Error is a decoding problem with the JSON path of the field at fault
// ("body" for the document as a whole).
type Error struct {
	Field, Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// maxNameBytes bounds a client-supplied field name echoed in an error.
const maxNameBytes = 64

// Decode decodes exactly one JSON object from data into v. prefix is the
// object's path inside an enclosing document ("" at the top level), and
// prefixes every field named in an error.
func Decode(data []byte, v any, prefix string) *Error {
	where := prefix
	if where == "" {
		where = "body"
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return &Error{where, "must not be empty"}
	}
	if trimmed[0] != '{' {
		return &Error{where, "must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fromDecode(err, prefix, where)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &Error{where, "trailing data after the JSON object"}
	}
	return nil
}

func fromDecode(err error, prefix, where string) *Error {
	join := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	var nested *Error
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &nested):
		return nested // from a nested decoder (an UnmarshalJSON using Decode)
	case errors.As(err, &typeErr):
		field := where
		if typeErr.Field != "" {
			field = join(typeErr.Field)
		}
		return &Error{field, "must be " + kind(typeErr.Type.Kind().String()) + ", got " + firstWord(typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return &Error{where, fmt.Sprintf("invalid JSON at offset %d", syntaxErr.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &Error{where, "truncated JSON"}
	}
	// encoding/json reports unknown fields only as text, in a stable form.
	const unknown = `json: unknown field "`
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		name := strings.TrimSuffix(strings.TrimPrefix(msg, unknown), `"`)
		if len(name) > maxNameBytes || !utf8.ValidString(name) {
			name = strings.ToValidUTF8(name[:min(len(name), maxNameBytes)], "?")
		}
		if name == "" {
			return &Error{where, `unknown field ""`}
		}
		return &Error{join(name), "unknown field"}
	}
	return &Error{where, "invalid JSON"}
}

// kind names a Go kind the way a JSON client thinks of it.
func kind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a " + k
}

// firstWord keeps "number" of "number 1.5": the value itself is client
// input and does not belong in an error message.
func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}
